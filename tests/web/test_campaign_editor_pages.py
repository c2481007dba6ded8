"""The campaign editor's pages through the test client, posting the form as a browser would."""
from __future__ import annotations

import shutil
from html.parser import HTMLParser
from pathlib import Path

import pytest

from nurture_mail.campaigns import CampaignLoader, editor, sync_all
from nurture_mail.config import Config

from .conftest import sign_in

ROOT = Path(__file__).resolve().parents[2]


class _Form(HTMLParser):
    """The fields of the first POST form on a page, as a browser would submit them."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.fields: dict[str, str] = {}
        self._in_form = False
        self._done = False
        self._textarea: str | None = None
        self._select: str | None = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "form" and a.get("method") == "post" and not self._done and "campaign-editor" in (a.get("class") or ""):
            self._in_form = True
        if not self._in_form:
            return
        name = a.get("name")
        if tag == "input" and name:
            if a.get("type") == "checkbox":
                if "checked" in a:
                    self.fields[name] = a.get("value", "on")
            elif a.get("type") != "submit":
                self.fields[name] = a.get("value", "")
        elif tag == "textarea" and name:
            self._textarea = name
            self.fields[name] = ""
        elif tag == "select" and name:
            self._select = name
        elif tag == "option" and self._select and ("selected" in a or self._select not in self.fields):
            self.fields[self._select] = a.get("value", "")

    def handle_data(self, data):
        if self._textarea:
            self.fields[self._textarea] += data

    def handle_endtag(self, tag):
        if tag == "textarea":
            self._textarea = None
        elif tag == "select":
            self._select = None
        elif tag == "form" and self._in_form:
            self._in_form, self._done = False, True


def form_fields(page: str) -> dict[str, str]:
    parser = _Form()
    parser.feed(page)
    return parser.fields


@pytest.fixture
def web_config(tmp_path: Path) -> Config:
    shutil.copytree(ROOT / "campaigns", tmp_path / "campaigns")
    shutil.copytree(ROOT / "templates", tmp_path / "templates")
    return Config.from_env({"CAMPAIGNS_DIR": str(tmp_path / "campaigns"), "TEMPLATES_DIR": str(tmp_path / "templates")},
                           instance_path=tmp_path / "instance", secret_key="web-test-secret")


@pytest.fixture
def marketer(web_app):
    svc = web_app.extensions["nurture"]
    specs, _ = CampaignLoader(svc.config.templates_dir).load_dir(svc.config.campaigns_dir)
    with svc.db.session() as session:
        sync_all(session, specs, svc.clock.now())
    return sign_in(web_app.test_client(), "marketer")


def test_the_unchanged_form_reviews_as_no_change(marketer) -> None:
    fields = form_fields(marketer.get("/campaigns/northwind-security/edit").get_data(as_text=True))
    page = marketer.post("/campaigns/northwind-security/edit", data={**fields, "action": "review"})
    assert page.status_code == 200
    assert "No change: the file would stay exactly as it is." in page.get_data(as_text=True)


def test_a_read_only_folder_offers_the_file_for_download(web_app, marketer, monkeypatch) -> None:
    monkeypatch.setattr(editor, "folder_writable", lambda folder: False)
    path = web_app.extensions["nurture"].config.campaigns_dir / "northwind-security.yaml"
    before = path.read_text()
    page = marketer.get("/campaigns/northwind-security/edit").get_data(as_text=True)
    assert "read-only on this server" in page
    fields = form_fields(page)
    fields["cadence"] = "4d"
    review = marketer.post("/campaigns/northwind-security/edit", data={**fields, "action": "review"})
    text = review.get_data(as_text=True)
    assert review.status_code == 200 and "+cadence: 4d" in text
    assert "Save and sync" not in text and "Download northwind-security.yaml" in text
    save = {"csrf_token": fields["csrf_token"], "new_text": before.replace("cadence: 3d", "cadence: 4d"),
            "base_hash": fields["base_hash"], "slug": "northwind-security", "new": "0"}
    download = marketer.post("/campaigns/save", data={**save, "action": "download"})
    assert download.status_code == 200
    assert download.headers["Content-Disposition"] == 'attachment; filename="northwind-security.yaml"'
    assert "cadence: 4d" in download.get_data(as_text=True) and "# Reading guide:" in download.get_data(as_text=True)
    refused = marketer.post("/campaigns/save", data={**save, "action": "save"})
    assert refused.status_code == 409 and "read-only" in refused.get_data(as_text=True)
    assert path.read_text() == before


def test_a_file_changed_on_disk_meanwhile_is_not_overwritten(web_app, marketer) -> None:
    path = web_app.extensions["nurture"].config.campaigns_dir / "northwind-security.yaml"
    fields = form_fields(marketer.get("/campaigns/northwind-security/edit").get_data(as_text=True))
    fields["max_touches"] = "20"
    review = marketer.post("/campaigns/northwind-security/edit", data={**fields, "action": "review"})
    assert "+max_touches: 20" in review.get_data(as_text=True)
    path.write_text(path.read_text().replace("cadence: 3d", "cadence: 5d"))  # someone else's change
    new_text = path.read_text().replace("max_touches: 14", "max_touches: 20")
    save = marketer.post("/campaigns/save", data={"csrf_token": fields["csrf_token"], "new_text": new_text,
                                                  "base_hash": fields["base_hash"], "slug": "northwind-security",
                                                  "new": "0", "action": "save"})
    assert save.status_code == 409 and "was changed on disk" in save.get_data(as_text=True)
    assert "max_touches: 14" in path.read_text()


def test_pause_and_resume_from_the_campaign_page(web_app, marketer) -> None:
    fields = form_fields(marketer.get("/campaigns/northwind-security/edit").get_data(as_text=True))
    token = {"csrf_token": fields["csrf_token"]}
    assert marketer.post("/campaigns/northwind-security/pause", data=token).status_code == 303
    assert "Paused</span>" in marketer.get("/campaigns/northwind-security").get_data(as_text=True)
    assert "Paused" in marketer.get("/campaigns/").get_data(as_text=True)
    assert marketer.post("/campaigns/northwind-security/resume", data=token).status_code == 303
    assert "Running</span>" in marketer.get("/campaigns/northwind-security").get_data(as_text=True)
