"""The back-office: server-rendered pages under `/admin` for people (API keys are for machines).

Layout: `app.py` builds the app from the page modules in `views/`; `auth.py` and
`csrf.py` keep it safe, over the platform's session store and login throttle
(`conveyor.sessions`, `conveyor.logins`); `templating.py` renders the Jinja2 templates
in `templates/` (autoescaped); `static/` holds our own CSS and JS. Views call the
platform's services (`platform.queues`, `.backends`, `.publisher`, `.keys`, `.users`,
`.sessions`, `.logins`, `.storage`, `.links`, `.outbox`, `.workers`), never SQL; the forms
of tables, fields and records live in `field_form.py`, `record_form.py`,
`record_list.py` and `rule_check.py`. `docs/backoffice.md` explains how to add a page.
"""

from __future__ import annotations

from conveyor.web.app import create_web_app

__all__ = ["create_web_app"]
