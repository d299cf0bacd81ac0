"""The use cases of aipilot, grouped by domain; the CLI, ``aipilot serve`` and the Python API
call these and nothing below them.

- :mod:`~aipilot.services.keys` — API keys, sealed under the master key;
- :mod:`~aipilot.services.catalog` — providers, models, users' own models, prices;
- :mod:`~aipilot.services.config` — the active model, system prompts, the configuration
  test, the status views;
- :mod:`~aipilot.services.assist` — chats through the active model;
- :mod:`~aipilot.services.accounting` — usage rows, quotas and limits, the usage report;
- :mod:`~aipilot.services.orgs` — organisations and their OpenAI connection;
- :mod:`~aipilot.services.users` — users, identities and ``serve``'s API tokens.

Shared by all: :mod:`~aipilot.services.runtime` (the ``Context``), ``validate`` (input
checks), ``locks`` (retrying on a locked database), ``setup`` (``aipilot init``) and
``documents`` (the seed's JSON documents, the same for the CLI's ``--json`` and the HTTP
routes).
"""
