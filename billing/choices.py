"""The fixed vocabularies of billing, apart from the models so that the rules
(billing.plan_rules) can name them without importing a model."""

from django.db import models


class RunStatus(models.TextChoices):
    RUNNING = "running", "Running"
    SUCCESS = "success", "Success"
    FAILED = "failed", "Failed"
    # Its process died mid-run (killed, machine lost); a later run redid its days.
    ABANDONED = "abandoned", "Abandoned"


class BillingPeriod(models.TextChoices):
    MONTH = "month", "Calendar month"


class OveragePolicy(models.TextChoices):
    CHARGE = "charge", "Charge overage"
    BLOCK = "block", "Block at the limit"
    NOTIFY = "notify", "Notify only"


class StatementStatus(models.TextChoices):
    DRAFT = "draft", "Draft"
    FINAL = "final", "Final"


class FailedJob(models.TextChoices):
    STATEMENT = "statement", "Statement draft"
    FINALIZE = "finalize", "Statement finalization"
    ALERTS = "alerts", "Alert check"
    MAIL = "mail", "Alert mail"
    STATEMENT_MAIL = "statement_mail", "Statement mail"


class ChargeModel(models.TextChoices):
    GRADUATED = "graduated", "Graduated: each tier prices the units inside it"
    VOLUME = "volume", "Volume: the tier reached prices every unit"
    PACKAGE = "package", "Package: a price per started package of units"
