"""`aipilot serve`: the seed's Edge Function contracts and an OpenAI-compatible API over HTTP.

Built with Starlette and run by uvicorn; imported only by the ``serve`` command (importing
``aipilot.cli`` never pulls in starlette or uvicorn). Modules: :mod:`.app` (factory, health,
lifespan), :mod:`.auth` (bearer tokens and JWTs), :mod:`.functions` (``/functions/v1/*``),
:mod:`.openai` (``/v1/*``), :mod:`.errors` (AipilotError → HTTP), :mod:`.limits` (body size),
:mod:`.runner` (uvicorn, graceful shutdown).
"""
