"""The brand is configuration: product names from a file, phones by shape, reference numbers
visible to agents and hidden from marketing (issue 22, point 7)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from classifiers.entities import EntityExtractor, redact, redact_references
from classifiers.products import DEMO_PRODUCTS, load_products
from classifiers.triager import Triager
from dashboards.marketing_face import build_report
from pipeline.errors import ConfigError
from pipeline.settings import Settings
from pipeline.store.embedded import EmbeddedStore
from tests.helpers import make_post

NOW = datetime(2026, 11, 2, tzinfo=UTC)


def test_products_come_from_the_file_the_setting_names(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, triager: Triager
) -> None:
    listed = tmp_path / "products.txt"
    listed.write_text("# Globex\nGlobex Hoverboard\n\n格洛拜平衡车\nGlobex Hoverboard\n", "utf-8")
    monkeypatch.setenv("TRIAGE_PRODUCTS_FILE", str(listed))
    products = load_products(Settings.from_environment().products_file)
    assert products == ("Globex Hoverboard", "格洛拜平衡车")
    brand = Triager(triager.model, triager.version, products)
    posts = [make_post(1, "my globex hoverboard died"), make_post(2, "我的格洛拜平衡车坏了")]
    found = [[(e.kind, e.text) for e in t.entities] for t in brand.triage(posts, NOW)]
    assert found == [[("product", "globex hoverboard")], [("product", "格洛拜平衡车")]]
    # no brand is built in: without a file, no product is found, not even the demo brand's
    bare = Triager(triager.model, triager.version)
    [acme] = bare.triage([make_post(3, "my AcmeWatch died")], NOW)
    assert [e for e in acme.entities if e.kind == "product"] == []
    assert "AcmeWatch" in load_products(DEMO_PRODUCTS)


def test_a_missing_products_file_is_a_one_line_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"products file .*nope\.txt") as caught:
        load_products(tmp_path / "nope.txt")
    assert "\n" not in str(caught.value)
    assert load_products(None) == ()


@pytest.mark.parametrize(
    ("text", "agents_see", "marketing_sees"),
    [
        (
            "my parcel 12345678 never came, call me on +44 20 7946 0958",
            "my parcel 12345678 never came, call me on [PHONE]",
            "my parcel [PARCEL] never came, call me on [PHONE]",
        ),
        (
            "Order 48392011 is late. Ticket #88213 still open, ring (415) 555-0134",
            "Order 48392011 is late. Ticket #88213 still open, ring [PHONE]",
            "Order [ORDER] is late. Ticket #[TICKET] still open, ring [PHONE]",
        ),
        (
            "快递单号 773012345678 三天没动，电话 13812345678，订单号20261123001",
            "快递单号 773012345678 三天没动，电话 [PHONE]，订单号20261123001",
            "快递单号 [PARCEL] 三天没动，电话 [PHONE]，订单号[ORDER]",
        ),
        (
            "tracking number 1Z999AA10123456784, text me at 5551234567",
            "tracking number 1Z999AA10123456784, text me at [PHONE]",
            "tracking number [PARCEL], text me at [PHONE]",
        ),
        # lower-casing "İ" changes the text's length: the case-blind patterns run on it as written
        (
            "İstanbul: PARCEL 12345678, CALL 5551234567",
            "İstanbul: PARCEL 12345678, CALL [PHONE]",
            "İstanbul: PARCEL [PARCEL], CALL [PHONE]",
        ),
        # a bare run of digits with nothing that says phone is not a phone
        ("got 12345678 on 2026-11-23", "got 12345678 on 2026-11-23", "got 12345678 on 2026-11-23"),
    ],
)
def test_phones_by_shape_and_reference_numbers_by_audience(
    text: str, agents_see: str, marketing_sees: str
) -> None:
    found = EntityExtractor().extract(text)
    shown = redact(text, found)
    assert shown == agents_see
    assert redact_references(shown, [(e.kind, e.text) for e in found]) == marketing_sees


def test_marketing_reads_posts_without_order_numbers(tmp_path: Path, triager: Triager) -> None:
    store = EmbeddedStore(tmp_path / "store.sqlite3")
    store.ensure_schema()
    post = make_post(1, "Order #48392011 never arrived, third week of waiting")
    post = post.model_copy(update={"created_at": NOW - timedelta(minutes=5)})
    [triaged] = triager.triage([post], NOW)
    store.write_batch([triaged])
    assert "48392011" in triaged.redacted_text  # the agent can look the order up
    [fact] = build_report(store, NOW - timedelta(hours=1), NOW).posts
    assert "48392011" not in fact.text and "[ORDER]" in fact.text
