"""The ground rules under brands: colours and their text colour, host names a tenant
may claim, which files are images, and which addresses the portal will fetch."""

import pytest

from accounts.demo import bars_logo
from utilities.colors import color_problem, contrast_ratio, readable_ink
from utilities.hostnames import domain_problem, normalized_domain
from utilities.images import image_type
from utilities.outbound import OutboundRefused, checked_address, request, url_problem


def test_contrast_ratios_are_wcags():
    assert contrast_ratio("#ffffff", "#000000") == pytest.approx(21)
    assert contrast_ratio("#777777", "#777777") == pytest.approx(1)
    # WCAG's worked example: #767676 on white is 4.54:1, the lightest grey passing AA.
    assert contrast_ratio("#767676", "#ffffff") == pytest.approx(4.54, abs=0.01)


@pytest.mark.parametrize(
    ("background", "ink"),
    [("#000000", "#ffffff"), ("#ffffff", "#000000"), ("#14202e", "#ffffff"),
     ("#f5b301", "#000000"), ("#0f766e", "#ffffff"), ("#ffff00", "#000000")],
)  # fmt: skip
def test_the_text_colour_contrasts_most(background, ink):
    assert readable_ink(background) == ink
    other = "#000000" if ink == "#ffffff" else "#ffffff"
    assert contrast_ratio(ink, background) >= contrast_ratio(other, background)


@pytest.mark.parametrize("value", ["#1f6feb", "#ABCDEF"])
def test_colours_are_six_hex_digits(value):
    assert color_problem(value) is None


@pytest.mark.parametrize("value", ["1f6feb", "#fff", "#1f6feb0", "red", "#12345g", ""])
def test_other_colours_are_refused(value):
    assert "#rrggbb" in color_problem(value)


def test_domains_compare_without_case_or_final_dot():
    assert normalized_domain(" Portal.Example.COM. ") == "portal.example.com"


@pytest.mark.parametrize(
    ("domain", "reserved", "words"),
    [
        ("portal.example.com", (), None),
        ("xn--bcher-kva.example", (), None),
        ("cloudline.localhost", ("localhost", "127.0.0.1"), None),
        ("localhost", (), "at least two parts"),
        ("192.168.1.10", (), "not an IP address"),
        ("::1", (), "without a scheme, port"),
        ("a..example", (), "at least two parts"),
        ("-bad.example", (), "letters, digits and hyphens"),
        ("x" * 64 + ".example", (), "letters, digits and hyphens"),
        ("usage.example.net", ("usage.example.net",), "the portal's own"),
        ("eu.example.net", (".example.net",), "the portal's own"),
        ("anything.example", ("*",), "the portal's own"),
    ],
)
def test_domain_rules(domain, reserved, words):
    problem = domain_problem(domain, reserved)
    assert (problem is None) if words is None else (words in problem)


def test_images_are_known_by_their_first_bytes():
    assert image_type(bars_logo("#123456")) == "image/png"
    assert image_type(b"\xff\xd8\xff\xe0rest") == "image/jpeg"
    assert image_type(b"GIF89a...") == "image/gif"
    assert image_type(b"RIFF\x00\x00\x00\x00WEBPVP8 ") == "image/webp"
    assert image_type(b"<svg xmlns='http://www.w3.org/2000/svg'/>") is None
    assert image_type(b"") is None


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("ftp://example.com/logo.png", "http:// or https://"),
        ("file:///etc/passwd", "http:// or https://"),
        ("https:///logo.png", "no host"),
        ("https://user:secret@example.com/", "user name or password"),
        ("https://example.com:99999/", "port"),
    ],
)
def test_outbound_addresses_are_checked_before_dns(url, words):
    assert words in url_problem(url)
    with pytest.raises(OutboundRefused, match=words.split()[0]):
        request(url)


@pytest.mark.parametrize(
    "host", ["127.0.0.1", "localhost", "10.1.2.3", "169.254.169.254", "::1", "0.0.0.0"]
)
def test_private_and_loopback_addresses_are_refused(host):
    with pytest.raises(OutboundRefused, match="private, loopback or reserved"):
        checked_address(host, 80, allow_private=False)
    assert checked_address(host, 80, allow_private=True)


def test_an_unresolvable_host_is_refused():
    with pytest.raises(OutboundRefused, match="could not be resolved"):
        checked_address("no-such-host.invalid", 443, allow_private=False)
