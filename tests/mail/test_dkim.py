"""DKIM signing of the fast MIME writer's output, verified with dkimpy against the public key."""
from __future__ import annotations

import base64
import shutil
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest
from ci import require

from nurture_mail.config import Config, ConfigError
from nurture_mail.mail.dkim import SIGNED_HEADERS, DkimError, DkimSigner
from nurture_mail.mail.mime import OutgoingEmail, build_message, message_id_for
from nurture_mail.mail.ratelimit import DeliverabilitySettings, deliverability_settings

dkim = pytest.importorskip("dkim")


@pytest.fixture(scope="module")
def keypair(tmp_path_factory) -> tuple[Path, bytes]:
    if shutil.which("openssl") is None:
        require("openssl is not installed", "apt-get install -y openssl (it makes the test DKIM key)")
    key = tmp_path_factory.mktemp("dkim") / "private.pem"
    subprocess.run(["openssl", "genrsa", "-out", str(key), "2048"], check=True, capture_output=True)
    public = subprocess.run(["openssl", "rsa", "-in", str(key), "-pubout", "-outform", "DER"], check=True,
                            capture_output=True).stdout
    return key, b"v=DKIM1; k=rsa; p=" + base64.b64encode(public)


def dns_for(txt: bytes, selector: str = "s1", domain: str = "northwind.example"):
    def dnsfunc(name: bytes, timeout: int = 5) -> bytes | None:
        return txt if name == f"{selector}._domainkey.{domain}.".encode() else None
    return dnsfunc


def email(**changes) -> OutgoingEmail:
    values = dict(
        from_addr="nurture@northwind.example", from_name="Nörthwind Cloud", to_addr="zoe@acme.example",
        to_name="Zoë Ørsted", subject="Zoë, the cloud risks teams underestimate — part 1",
        html="<p>Hello Zoë</p>\n" * 200, text="Hello Zoë\n" * 200,
        message_id=message_id_for(7, b"secret", "northwind.example"), date=datetime(2026, 3, 2, 14, tzinfo=UTC),
        extra_headers=(("List-Unsubscribe", "<https://nurture.example/u/abc.def>, "
                        "<mailto:unsubscribe@northwind.example?subject=unsubscribe%20abc.def>"),
                       ("List-Unsubscribe-Post", "List-Unsubscribe=One-Click")),
    )
    values.update(changes)
    return OutgoingEmail(**values)


def test_a_signed_message_verifies_and_signs_the_rfc_8058_headers(keypair):
    key, txt = keypair
    signer = DkimSigner("s1", "northwind.example", key.read_bytes())
    signed = signer.sign(build_message(email()))
    assert signed.startswith(b"DKIM-Signature: ") and b"\r\n\r\n" in signed
    assert dkim.verify(signed, dnsfunc=dns_for(txt))
    header = signed.split(b"\r\n\r\n", 1)[0].decode()
    h_tag = " ".join(header.split("h=", 1)[1].split(";", 1)[0].split())
    assert [h.strip() for h in h_tag.split(":")] == list(SIGNED_HEADERS)


@pytest.mark.parametrize("change", [
    (b"List-Unsubscribe-Post: List-Unsubscribe=One-Click", b"List-Unsubscribe-Post: List-Unsubscribe=Nope"),
    (b"To: ", b"To: x"),
    (b"Hello", b"Hullo"),  # the body (base64: the decoded change is a different encoded line)
])
def test_a_change_to_a_signed_part_breaks_the_signature(keypair, change):
    key, txt = keypair
    signed = DkimSigner("s1", "northwind.example", key.read_bytes()).sign(
        build_message(email(text="Hello\n", html="<p>Hello</p>\n")))
    if change[0] == b"Hello":  # bodies are base64: change the encoded text instead
        change = (base64.b64encode(b"Hello\r\n"), base64.b64encode(b"Hullo\r\n"))
    tampered = signed.replace(*change, 1)
    assert tampered != signed
    assert not dkim.verify(tampered, dnsfunc=dns_for(txt))


def test_adding_a_reply_to_after_signing_breaks_the_signature(keypair):
    """Reply-To is in h= even when absent: nobody can add one on the way."""
    key, txt = keypair
    signed = DkimSigner("s1", "northwind.example", key.read_bytes()).sign(build_message(email()))
    head, body = signed.split(b"\r\n\r\n", 1)
    assert not dkim.verify(head + b"\r\nReply-To: attacker@evil.example\r\n\r\n" + body, dnsfunc=dns_for(txt))


def test_bad_keys_and_settings_are_refused_naming_the_setting(tmp_path, keypair):
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("-----BEGIN PRIVATE KEY-----\nbm90IGEga2V5\n-----END PRIVATE KEY-----\n")
    with pytest.raises(DkimError, match="DKIM_PRIVATE_KEY_PATH"):
        DkimSigner.from_settings(DeliverabilitySettings(dkim_selector="s1", dkim_private_key_path=str(garbage)))
    with pytest.raises(DkimError, match="cannot read"):
        DkimSigner.from_settings(DeliverabilitySettings(dkim_selector="s1",
                                                        dkim_private_key_path=str(tmp_path / "none.pem")))
    assert DkimSigner.from_settings(DeliverabilitySettings()) is None

    def settings(env: dict[str, str]) -> DeliverabilitySettings:
        return deliverability_settings(Config.from_env(env, instance_path=tmp_path, secret_key="x"))

    env = {"DKIM_SELECTOR": "s1", "DKIM_PRIVATE_KEY_PATH": str(keypair[0])}
    assert (settings(env).dkim_enabled, settings(env).dkim_domain) == (True, "northwind.example")
    assert settings({**env, "DKIM_DOMAIN": "mail.northwind.example"}).dkim_domain == "mail.northwind.example"
    with pytest.raises(ConfigError, match="DKIM_SELECTOR and DKIM_PRIVATE_KEY_PATH"):
        settings({"DKIM_SELECTOR": "s1"})
    with pytest.raises(ConfigError, match="SEND_RATE_PER_SECOND"):
        settings({"SEND_RATE_PER_SECOND": "fast"})
