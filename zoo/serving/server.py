"""`python -m zoo.serving.server ARGS...` runs `max serve ARGS...` with a few zoo touches.

- Request errors MAX reports only as "Value error." (unknown model name,
  negative `max_tokens`, ...) get the reason instead, still as HTTP 400,
  and an empty prompt list is a 400 (MAX answers it with a 500).
- With `ZOO_SERVE_MAX_REQUESTS=N` (set by `zoo serve`), requests beyond N in
  progress get HTTP 429 at once (`admission`).
- MAX's remote telemetry is off unless `MAX_SERVE_DISABLE_TELEMETRY` is set
  (offline machines otherwise log a connection error every few seconds).

Everything else, scheduling, batching, streaming and the OpenAI routes, is
MAX's own server. `zoo serve` builds the arguments.
"""

from __future__ import annotations

import os
import sys
from typing import Any

_VAGUE = "Value error"


def _explain_value_errors(app: Any) -> Any:
    """Makes `app` answer HTTP errors that hide a ValueError with that error's message."""
    from fastapi import HTTPException
    from fastapi.responses import JSONResponse
    from max.serve._error_envelope import openai_error_body

    async def handler(request: Any, error: Exception) -> JSONResponse:
        assert isinstance(error, HTTPException)
        detail = str(error.detail)
        cause = error.__cause__
        if error.status_code < 500 and isinstance(cause, ValueError) and detail.rstrip(".") == _VAGUE:
            detail = str(cause)
        return JSONResponse(
            status_code=error.status_code,
            content=openai_error_body(error.status_code, detail),
            headers=getattr(error, "headers", None),
        )

    app.add_exception_handler(HTTPException, handler)
    return app


def _install_error_details() -> None:
    try:
        from max._entrypoints.cli.serve import serve_api_and_model_worker as serving
    except ImportError:  # another MAX layout: serve with MAX's messages
        return
    make_app = serving.fastapi_app
    serving.fastapi_app = lambda *args, **kwargs: _limit_admission(_explain_value_errors(make_app(*args, **kwargs)))
    _refuse_empty_prompt_lists()


def _limit_admission(app: Any) -> Any:
    from .admission import LIMIT_VARIABLE, AdmissionLimit

    limit = os.environ.get(LIMIT_VARIABLE, "")
    if limit.isdigit() and int(limit) > 0:
        app.add_middleware(AdmissionLimit, limit=int(limit), detail=os.environ.get(LIMIT_VARIABLE + "_DETAIL", ""))
    return app


def _refuse_empty_prompt_lists() -> None:
    try:
        from max.pipelines.context.exceptions import InputError
        from max.serve.router import openai_routes
    except ImportError:
        return
    prompts_of = openai_routes.get_prompts_from_openai_request

    def checked(prompt: Any) -> Any:
        prompts = prompts_of(prompt)
        if not prompts:
            raise InputError("the prompt is empty")
        return prompts

    openai_routes.get_prompts_from_openai_request = checked


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("MAX_SERVE_DISABLE_TELEMETRY", "1")
    _install_error_details()
    from max._entrypoints.pipelines import main as max_main

    args = list(sys.argv[1:] if argv is None else argv)
    return int(max_main(["serve", *args], prog_name="max") or 0)


if __name__ == "__main__":
    sys.exit(main())
