"""Secrets taken out of captured text before it is written to an evidence bundle.

    text, count = redact_text(text)       # count: how many secrets were replaced
    data, count = redact_bytes(data)      # the same on bytes; other bytes kept exactly

Replaced: private key PEM blocks (probes.certs.redact), `Authorization:` header values,
`Bearer` tokens, JSON Web Tokens (service-account tokens: eyJ... in three dot-separated parts),
kubeconfig and JSON credential fields (token, client-key-data, password, id-token,
refresh-token, access-token, client-secret, secret), and `--token=`/`--password=` flags.

Kept on purpose: certificates (client-certificate-data, certificate-authority-data, PEM
CERTIFICATE blocks) are public and say who a node is and when its credentials expire, which is
evidence; file paths to keys (client-key: /path) name no secret. Everything not matched is kept
character for character.
"""

from __future__ import annotations

import re

from probes.certs import redact as redact_private_keys

__all__ = ["redact_text", "redact_bytes", "REDACTED", "SECRET_KEYS"]

REDACTED = "(redacted)"

# kubeconfig / JSON / YAML keys whose values are secrets
SECRET_KEYS = ("token", "client-key-data", "password", "id-token", "refresh-token",
               "access-token", "client-secret", "secret", "bootstrap-token", "auth-token",
               "api-key", "apikey")
_KEYS = "|".join(re.escape(k) for k in sorted(SECRET_KEYS, key=len, reverse=True))

_PEM_KEY = re.compile(r"-----BEGIN ([A-Z0-9 ]*PRIVATE KEY)-----")
_PEM_DONE = re.compile(r"-----BEGIN ([A-Z0-9 ]*PRIVATE KEY)-----\n\(redacted\)\n-----END \1-----")
_SCHEMES = (r"(?i:bearer|basic|digest|negotiate|ntlm|token|aws4-hmac-sha256|hoba|mutual|"
            r"scram-[\w-]+)")
_AUTH_HEADER = re.compile(r"(?i)(?<![\w.-])((?:proxy-)?authorization[\"']?\s*[:=]\s*+[\"']?+)"
                          r"(?!\(redacted\))((?:" + _SCHEMES + r")\s+[^\s\"']+|"
                          r"[A-Za-z0-9\-._~+/]{16,}=*)")
_BEARER = re.compile(r"(?i)\b(bearer\s++)(?!\(redacted\))([A-Za-z0-9\-._~+/]{8,}=*)")
_JWT = re.compile(r"\beyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}")
# YAML `key: value` (also `- key: value`) and JSON `"key": "value"`
_YAML = re.compile(rf"(?im)^(\s*(?:-\s+)?[\"']?(?:{_KEYS})[\"']?\s*:[ \t]*+)"
                   r"(?![\"']?\(redacted\))(?!\s*$)(?![|>][-+]?\s*$)([^\r\n#]*?)(\s*(?:#.*)?)$")
_JSON = re.compile(rf"(?i)(\"(?:{_KEYS})\"\s*:\s*+\")(?!\(redacted\))((?:[^\"\\]|\\.)+)(\")")
# a token anywhere else in running text (`token: X`, `token=X`), when X looks like one
_LOOSE_TOKEN = re.compile(r"(?i)(?<![\w-])((?:bearer[-_ ]?)?token\s*[:=]\s*+[\"']?+)"
                          r"(?!\(redacted\))"
                          r"([A-Za-z0-9._~+/\-]{16,}=*)")
# command-line flags: --token=X, --token X, --password=X, --client-key-data=X
_FLAG = re.compile(rf"(?i)(--(?:{_KEYS})(?:=|\s++))(?!\(redacted\))([^\s\"']+)")


def redact_text(text: str) -> tuple[str, int]:
    """`text` with every secret replaced by "(redacted)", and how many were replaced."""
    count = 0
    before = len(_PEM_KEY.findall(text)) - len(_PEM_DONE.findall(text))
    if before > 0:
        text = redact_private_keys(text)
        count += before

    low = text.lower()
    keys = any(k in low for k in SECRET_KEYS)

    def sub(rx: re.Pattern[str], repl: str, s: str, wanted: bool) -> str:
        nonlocal count
        if not wanted:  # the pattern's word is nowhere in the text: skip the scan
            return s
        s, n = rx.subn(repl, s)
        count += n
        return s

    text = sub(_AUTH_HEADER, rf"\g<1>{REDACTED}", text, "authorization" in low)
    text = sub(_JSON, rf"\g<1>{REDACTED}\g<3>", text, keys)
    text = sub(_YAML, rf"\g<1>{REDACTED}\g<3>", text, keys)
    text = sub(_FLAG, rf"\g<1>{REDACTED}", text, keys)
    text = sub(_LOOSE_TOKEN, rf"\g<1>{REDACTED}", text, "token" in low)
    text = sub(_BEARER, rf"\g<1>{REDACTED}", text, "bearer" in low)
    text = sub(_JWT, REDACTED, text, "eyJ" in text)
    return text, count


def redact_bytes(data: bytes) -> tuple[bytes, int]:
    """`redact_text` on bytes: bytes that are not UTF-8 pass through unchanged."""
    text = data.decode("utf-8", "surrogateescape")
    out, count = redact_text(text)
    if not count:
        return data, 0
    return out.encode("utf-8", "surrogateescape"), count
