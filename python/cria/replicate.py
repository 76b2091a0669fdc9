"""``cria.stream(model, input={...})``: Replicate's Python client, on a device.

``model`` is a path to a .cria file, a :class:`cria.Model`, or the URL of a
``cria serve`` (any server speaking Replicate's predictions API): then this is
an HTTP client of it, with the standard library only. Events are shaped like
the ``replicate`` package's ``ServerSentEvent``: ``str(event)`` is the output
text (empty for the final ``done`` event).
"""
import enum
import json
import os
import random
import urllib.error
import urllib.parse
import urllib.request
from typing import Any, Dict, Iterator, Mapping, Optional, Tuple, Union

from ._request import check_float, check_int, check_str
from .errors import ArgumentTypeError, InvalidArgumentError, ServerError, UnsupportedError
from .model import Model, PathLike


class ServerSentEvent:
    """One event of a prediction's stream (Replicate's shape)."""

    class EventType(enum.Enum):
        OUTPUT = "output"
        LOGS = "logs"
        ERROR = "error"
        DONE = "done"

    __slots__ = ("event", "data", "id", "retry")

    def __init__(self, event: "ServerSentEvent.EventType", data: str, id: str = "",
                 retry: Optional[int] = None) -> None:
        self.event = event
        self.data = data
        self.id = id
        self.retry = retry

    def __str__(self) -> str:
        return self.data if self.event is ServerSentEvent.EventType.OUTPUT else ""

    def __repr__(self) -> str:
        return f"ServerSentEvent(event={self.event.value!r}, data={self.data!r}, id={self.id!r})"


# Replicate's Llama 3 inputs and their defaults there (which cria serve uses
# too, so an input gives the same text locally and through a server).
DEFAULTS: Dict[str, Any] = {"system_prompt": "You are a helpful assistant", "max_tokens": 512, "temperature": 0.6,
                            "top_p": 0.9, "top_k": 50}
INPUTS = ("prompt", "system_prompt", "max_tokens", "max_new_tokens", "temperature", "top_p", "top_k",
          "stop_sequences", "seed", "prompt_template", "min_tokens", "presence_penalty", "frequency_penalty")
# Honoured by cria serve's batcher but not by the C API the local path uses:
# only their no-op values are accepted here.
_SERVER_ONLY = {"min_tokens": 0, "presence_penalty": 0, "frequency_penalty": 0}


def stream(model: Union[PathLike, Model], input: Optional[Mapping[str, Any]] = None, *,
           base_url: Optional[str] = None, api_token: Optional[str] = None,
           timeout: float = 600.0) -> Iterator[ServerSentEvent]:
    """Runs a model and yields its output as it is made, like ``replicate.stream``.

    ``input`` takes Replicate's Llama 3 names, with Replicate's defaults:
    ``prompt``, ``system_prompt`` ("You are a helpful assistant"),
    ``max_tokens`` or ``max_new_tokens`` (512), ``temperature`` (0.6; 0 is
    greedy), ``top_p`` (0.9), ``top_k`` (50), ``stop_sequences``
    (comma-separated), ``seed`` (random when not given) and
    ``prompt_template`` (with ``{prompt}`` and ``{system_prompt}``; it carries
    its own special tokens). Without a template, a model with a chat template
    gets the system prompt and the prompt as a user turn; a base model gets
    the prompt as is. ``min_tokens``, ``presence_penalty`` and
    ``frequency_penalty`` work through a server; locally only 0.

    ``model`` may be a .cria path, a :class:`cria.Model` (not closed here), a
    server URL (``http://127.0.0.1:8080`` or ``http://host:port/owner/name``)
    or, with ``base_url``, a Replicate reference ``owner/name[:version]``.
    ``api_token`` (default ``$CRIA_API_KEY``) is sent as a Bearer token.
    """
    if input is None:
        input = {}
    if not isinstance(input, Mapping):
        raise ArgumentTypeError(f"input must be a dict, got {type(input).__name__}")
    if isinstance(model, str) and (base_url is not None or model.startswith(("http://", "https://"))):
        return _http_stream(model, dict(input), base_url, api_token, timeout)
    return _local_stream(model, dict(input))


def _local_stream(model: Union[PathLike, Model], input: Dict[str, Any]) -> Iterator[ServerSentEvent]:
    unknown = sorted(set(input) - set(INPUTS))
    if unknown:
        raise InvalidArgumentError(f"input {unknown[0]!r} is not supported; cria takes {', '.join(INPUTS)}")
    owned = not isinstance(model, Model)
    m = Model(model) if owned else model  # type: ignore[arg-type]
    try:
        text_stream = m.stream(**_local_args(m, input))
    except BaseException:
        if owned:
            m.close()
        raise
    return _events(m if owned else None, text_stream)


def _events(owned: Optional[Model], text_stream: Any) -> Iterator[ServerSentEvent]:
    try:
        n = 0
        for piece in text_stream:
            yield ServerSentEvent(ServerSentEvent.EventType.OUTPUT, piece, str(n))
            n += 1
        yield ServerSentEvent(ServerSentEvent.EventType.DONE, "{}", str(n))
    finally:
        text_stream.close()
        if owned is not None:
            owned.close()


def _local_args(m: Model, input: Dict[str, Any]) -> Dict[str, Any]:
    """Model.stream arguments for Replicate inputs (the mapping cria serve uses)."""
    for key, noop in _SERVER_ONLY.items():
        if input.get(key, noop) != noop:
            raise UnsupportedError(f"input[{key!r}] works through cria serve, not the local C API (only {noop} here)")
    args: Dict[str, Any] = {}
    prompt = check_str("input['prompt']", input.get("prompt", ""))
    if not prompt:
        raise InvalidArgumentError("input['prompt'] is required")
    given_system = input.get("system_prompt")
    system = check_str("input['system_prompt']", given_system if given_system is not None else
                       DEFAULTS["system_prompt"])
    template = input.get("prompt_template")
    if template is not None:
        template = check_str("input['prompt_template']", template)
        if "{prompt}" not in template:
            raise InvalidArgumentError("input['prompt_template'] must contain {prompt}")
        # str.replace, not str.format: a prompt may hold braces of its own.
        args["prompt"] = template.replace("{system_prompt}", system).replace("{prompt}", prompt)
        args["add_bos"] = False  # the template carries its own special tokens
    elif m.info.chat_template != "none":
        args["prompt"] = prompt
        args["chat"] = True
        if system:
            args["system"] = system
    else:
        if given_system:
            raise InvalidArgumentError("input['system_prompt'] needs a model with a chat template "
                                       "(this is a base model) or a prompt_template")
        args["prompt"] = prompt
    a, b = input.get("max_tokens"), input.get("max_new_tokens")
    if a is not None and b is not None and a != b:
        raise InvalidArgumentError("input['max_tokens'] and input['max_new_tokens'] disagree")
    n = a if a is not None else b if b is not None else DEFAULTS["max_tokens"]
    args["max_new_tokens"] = check_int("input['max_tokens']", n, 1)
    temperature = check_float("input['temperature']", input.get("temperature", DEFAULTS["temperature"]))
    top_p = check_float("input['top_p']", input.get("top_p", DEFAULTS["top_p"]))
    # Replicate's models read top_k 0 and -1 as "no top-k", as cria does with 0.
    top_k = check_int("input['top_k']", input.get("top_k", DEFAULTS["top_k"]), -1)
    if temperature == 0 or top_p == 0:
        args["do_sample"] = False
    else:
        args.update(temperature=temperature, top_p=top_p, top_k=max(top_k, 0), do_sample=True)
    seed = input.get("seed")
    args["seed"] = random.getrandbits(63) if seed is None else check_int("input['seed']", seed, 0)
    stops = input.get("stop_sequences")
    if stops is not None:
        if isinstance(stops, str):
            stops = [s for s in stops.split(",") if s]
        elif not isinstance(stops, (list, tuple)):
            raise ArgumentTypeError("input['stop_sequences'] must be a comma-separated str or a list of str")
        args["stop"] = list(stops)
    return args


# ---- HTTP client of a Replicate-compatible server --------------------------

def _served_model(base: str, api_token: Optional[str], timeout: float) -> str:
    """The name a server gives its model (`GET /v1/models`, which cria serve
    answers), for a bare server URL: Replicate's API always names a model."""
    url = base + "/v1/models"
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=_headers(api_token, "application/json")),
                                    timeout=timeout) as r:
            j = json.loads(r.read().decode("utf-8"))
        name = j["data"][0]["id"]
        if isinstance(name, str) and name:
            return name
    except urllib.error.HTTPError as e:
        raise _server_error(e) from None
    except urllib.error.URLError as e:
        raise ServerError(f"{url}: {e.reason}") from None
    except (ValueError, KeyError, IndexError, TypeError):
        pass
    raise ServerError(f"{url}: no model listed; name one: {base}/OWNER/NAME")


def _endpoint(ref: str, base_url: Optional[str], api_token: Optional[str],
              timeout: float) -> Tuple[str, str, Dict[str, Any]]:
    """(server base URL, path to POST, body fields besides input)."""
    if base_url is None:
        u = urllib.parse.urlsplit(ref)
        if not u.netloc:
            raise InvalidArgumentError(f"{ref!r} is not a server URL")
        base = f"{u.scheme}://{u.netloc}"
        ref = u.path.strip("/")
        if not ref:
            ref = _served_model(base, api_token, timeout)
            if "/" not in ref:  # not owner/name: a version of the served model
                return base, "/v1/predictions", {"version": ref}
    else:
        base = check_str("base_url", base_url).rstrip("/")
    name, _, version = ref.partition(":")
    parts = name.split("/")
    if len(parts) != 2 or not all(parts):
        raise InvalidArgumentError(f"{ref!r}: expected a model reference owner/name or owner/name:version")
    if version:
        return base, "/v1/predictions", {"version": version}
    owner, model = (urllib.parse.quote(p, safe="") for p in parts)
    return base, f"/v1/models/{owner}/{model}/predictions", {}


def _headers(api_token: Optional[str], accept: str) -> Dict[str, str]:
    h = {"Accept": accept, "User-Agent": "cria-python"}
    token = api_token if api_token is not None else os.environ.get("CRIA_API_KEY")
    if token:
        h["Authorization"] = f"Bearer {token}"
    return h


def _server_error(e: urllib.error.HTTPError) -> ServerError:
    body = e.read().decode("utf-8", "replace")
    message = body.strip() or e.reason
    try:
        j = json.loads(body)
        if isinstance(j, dict):
            if isinstance(j.get("error"), dict):
                message = j["error"].get("message", message)
            elif isinstance(j.get("detail"), str):
                message = j["detail"]
            elif isinstance(j.get("error"), str):
                message = j["error"]
    except ValueError:
        pass
    return ServerError(f"{e.url}: HTTP {e.code}: {message}", e.code)


def _http_stream(ref: str, input: Dict[str, Any], base_url: Optional[str], api_token: Optional[str],
                 timeout: float) -> Iterator[ServerSentEvent]:
    base, path, extra = _endpoint(ref, base_url, api_token, timeout)
    body = dict(extra, input=input, stream=True)
    headers = _headers(api_token, "application/json")
    headers["Content-Type"] = "application/json"
    req = urllib.request.Request(base + path, data=json.dumps(body).encode(), headers=headers, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            prediction = json.loads(r.read().decode("utf-8"))
    except urllib.error.HTTPError as e:
        raise _server_error(e) from None
    except urllib.error.URLError as e:
        raise ServerError(f"{base + path}: {e.reason}") from None
    urls = prediction.get("urls") or {} if isinstance(prediction, dict) else {}
    url = urls.get("stream")
    if not isinstance(url, str) or not url:
        raise ServerError(f"{base + path}: the prediction has no urls.stream (the model does not stream)")
    return _read_events(urllib.parse.urljoin(base + "/", url), urls.get("cancel"), base, api_token, timeout)


def _read_events(url: str, cancel_url: Optional[str], base: str, api_token: Optional[str],
                 timeout: float) -> Iterator[ServerSentEvent]:
    headers = _headers(api_token, "text/event-stream")
    headers["Cache-Control"] = "no-store"
    try:
        resp = urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout)
    except urllib.error.HTTPError as e:
        raise _server_error(e) from None
    except urllib.error.URLError as e:
        raise ServerError(f"{url}: {e.reason}") from None
    ctype = resp.headers.get("Content-Type", "").partition(";")[0].strip()
    if ctype != "text/event-stream":
        resp.close()
        raise ServerError(f"{url}: expected text/event-stream, got {ctype or 'no content type'}")
    finished = False
    try:
        event, data, last_id, retry = "", [], "", None
        for raw in resp:
            line = raw.decode("utf-8").rstrip("\r\n")
            if not line:  # a blank line dispatches the event (the SSE spec)
                if event or data:
                    kind = event or "message"
                    text = "\n".join(data)
                    event, data = "", []
                    if kind == "error":
                        finished = True
                        try:
                            detail = json.loads(text).get("detail", text)
                        except (ValueError, AttributeError):
                            detail = text
                        raise ServerError(f"{url}: {detail}")
                    try:
                        etype = ServerSentEvent.EventType(kind)
                    except ValueError:
                        continue  # unknown event types are skipped, as EventSource does
                    yield ServerSentEvent(etype, text, last_id, retry)
                    if etype is ServerSentEvent.EventType.DONE:
                        finished = True
                        return
                continue
            if line.startswith(":"):
                continue
            field, _, value = line.partition(":")
            if value.startswith(" "):
                value = value[1:]
            if field == "event":
                event = value
            elif field == "data":
                data.append(value)
            elif field == "id" and "\0" not in value:
                last_id = value
            elif field == "retry" and value.isdigit():
                retry = int(value)
        finished = True
        raise ServerError(f"{url}: the stream ended without a done event")
    finally:
        resp.close()
        if not finished and cancel_url:
            # Left early: tell the server, so it frees the slot now rather
            # than when it notices the closed connection.
            try:
                creq = urllib.request.Request(urllib.parse.urljoin(base + "/", cancel_url), data=b"",
                                              headers=_headers(api_token, "application/json"), method="POST")
                urllib.request.urlopen(creq, timeout=5).close()
            except (urllib.error.URLError, OSError):
                pass
