"""The meter catalog both products meter: loaded by a data migration, listed here once."""

ACTIVITIES = (
    "transcription, translation, summarization, ocr, object_detection, pii_detection, "
    "redaction, embedding, chapters, transcoding, malware_scanning, workflow"
)

# code, name, category, unit, aggregation, group_by, unique_key, description
CATALOG = [
    (
        "processing_units",
        "Processing units",
        "processing",
        "PU",
        "sum",
        "activity",
        "",
        f"Unified processing consumption of AI and workflow activities: {ACTIVITIES}.",
    ),
    (
        "computation_ms",
        "Computation time",
        "processing",
        "ms",
        "sum",
        "activity",
        "",
        "Execution time taken by a process.",
    ),
    (
        "input_content_length_ms",
        "Input content length",
        "processing",
        "ms",
        "sum",
        "activity",
        "",
        "Duration of the processed input content.",
    ),
    (
        "input_content_size_bytes",
        "Input content size",
        "processing",
        "bytes",
        "sum",
        "activity",
        "",
        "Size of the processed input content.",
    ),
    (
        "input_pages",
        "Input pages",
        "processing",
        "pages",
        "sum",
        "activity",
        "",
        "Number of pages in processed documents.",
    ),
    (
        "storage_units",
        "Storage units",
        "storage",
        "SU",
        "max",
        "tier",
        "",
        "Storage in use across tiers: hot, cool, archive (a daily gauge).",
    ),
    (
        "bandwidth_units",
        "Bandwidth units",
        "bandwidth",
        "BU",
        "sum",
        "direction",
        "",
        "Unified bandwidth for ingress and egress (uploads, playback, downloads, portal "
        "resources; cached content is not metered).",
    ),
    ("ingress_bytes", "Ingress", "bandwidth", "bytes", "sum", "", "", "Size of data uploaded."),
    (
        "egress_bytes",
        "Egress",
        "bandwidth",
        "bytes",
        "sum",
        "",
        "",
        "Size of data downloaded or served.",
    ),
    (
        "licenses",
        "Licenses in use",
        "licenses",
        "count",
        "max",
        "license_type",
        "",
        "Client access licenses by type: administrator, manager, moderator, contributor, "
        "power_plus, viewer (a daily gauge).",
    ),
    (
        "active_users",
        "Active users",
        "licenses",
        "count",
        "unique_count",
        "",
        "user_id",
        "Distinct users active in the period.",
    ),
    ("portals", "Portals", "portals", "count", "max", "", "", "Portals in the account."),
    (
        "call_minutes",
        "Call minutes",
        "communications",
        "minutes",
        "sum",
        "direction",
        "",
        "Voice minutes handled by agents.",
    ),
    (
        "chat_sessions",
        "Chat sessions",
        "communications",
        "count",
        "count",
        "channel",
        "",
        "Chat conversations handled by agents.",
    ),
    (
        "sip_integrations",
        "SIP integrations",
        "communications",
        "count",
        "max",
        "",
        "",
        "Connected SIP trunks (a daily gauge).",
    ),
    (
        "emails",
        "Emails",
        "communications",
        "count",
        "count",
        "direction",
        "",
        "Emails sent or received by agents.",
    ),
]
# The platform's own units: one figure per category, whatever the activity, tier or
# direction behind it. The pages explain them once, from here.
UNIT_MEANINGS = {
    "PU": "Processing units: the platform's one measure of processing work, the same "
    "for every AI and workflow activity (transcription, OCR, redaction, transcoding, …).",
    "SU": "Storage units: the platform's one measure of content kept in storage, over "
    "the hot, cool and archive tiers; a daily gauge, so a period shows its highest day.",
    "BU": "Bandwidth units: the platform's one measure of data transferred in and out "
    "(uploads, playback, downloads, portal resources); content served from cache is "
    "not counted.",
}

FIELDS = (
    "code",
    "name",
    "category",
    "unit",
    "aggregation",
    "group_by",
    "unique_key",
    "description",
)


def catalog_rows() -> list[dict]:
    return [dict(zip(FIELDS, row, strict=True)) for row in CATALOG]
