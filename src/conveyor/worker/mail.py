"""`context.mail`: send mail through the SMTP server set by `CONVEYOR_SMTP_*`."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from email.message import EmailMessage
from email.utils import make_msgid

import aiosmtplib

from conveyor.config import Settings
from conveyor.exceptions import ConfigurationError, MailFailed

_DEFAULT_PORTS = {"tls": 465, "starttls": 587, "none": 25}


class Mailer:
    """Sends mail over SMTP; one connection per mail, bounded by `smtp_timeout_s`."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings

    @property
    def configured(self) -> bool:
        return bool(self._settings.smtp_host)

    async def send(
        self,
        to: str | Sequence[str],
        subject: str,
        text: str,
        *,
        html: str | None = None,
        sender: str | None = None,
        cc: Sequence[str] = (),
        bcc: Sequence[str] = (),
        reply_to: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> str:
        """Send a plain-text mail (with an HTML alternative if given); its Message-ID."""
        message = EmailMessage()
        message["From"] = sender or self._settings.smtp_from or self._no_sender()
        message["To"] = ", ".join([to] if isinstance(to, str) else to)
        if cc:
            message["Cc"] = ", ".join(cc)
        if reply_to:
            message["Reply-To"] = reply_to
        message["Subject"] = subject
        for name, value in (headers or {}).items():
            message[name] = value
        message.set_content(text)
        if html is not None:
            message.add_alternative(html, subtype="html")
        recipients = [*([to] if isinstance(to, str) else to), *cc, *bcc]
        return await self.send_message(message, recipients=recipients)

    async def send_message(
        self, message: EmailMessage, *, recipients: Sequence[str] | None = None
    ) -> str:
        """Send a message built with `email.message.EmailMessage`; its Message-ID."""
        settings = self._settings
        if not settings.smtp_host:
            raise ConfigurationError(
                "context.mail needs an SMTP server: set CONVEYOR_SMTP_HOST "
                "(and CONVEYOR_SMTP_PORT, _USERNAME, _PASSWORD, _FROM, _SECURITY)"
            )
        if "Message-ID" not in message:
            message["Message-ID"] = make_msgid()
        password = settings.smtp_password.get_secret_value() if settings.smtp_password else None
        with _translated(settings.smtp_host, password):
            await aiosmtplib.send(
                message,
                recipients=list(recipients) if recipients is not None else None,
                hostname=settings.smtp_host,
                port=settings.smtp_port or _DEFAULT_PORTS[settings.smtp_security],
                username=settings.smtp_username,
                password=password,
                use_tls=settings.smtp_security == "tls",
                start_tls=settings.smtp_security == "starttls",
                timeout=settings.smtp_timeout_s,
            )
        return str(message["Message-ID"])

    def _no_sender(self) -> str:
        raise ConfigurationError("no sender: pass sender=… or set CONVEYOR_SMTP_FROM")


@contextmanager
def _translated(host: str, password: str | None) -> Iterator[None]:
    """SMTP and network errors become MailFailed; the password never shows in the text."""
    try:
        yield
    except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
        detail = str(exc) or type(exc).__name__
        if password:
            detail = detail.replace(password, "***")
        raise MailFailed(f"could not send mail through {host}: {detail}") from exc
