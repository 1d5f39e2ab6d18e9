"""schemathesis hooks for tests/schemathesis.rs (loaded through SCHEMATHESIS_HOOKS).

Generated Idempotency-Key values repeat across unrelated requests ("0", "A", ...). By
DESIGN §2 a repeated key replays the key's first answer or is refused with 422
idempotency_key_reused; a replayed create of an endpoint deleted since then is then
"a created resource that is not there". Both are the contract, not findings, and
tests/idempotency.rs covers them. So every well-formed key (1-255 visible ASCII or
spaces, as the document says) is made unique here; a malformed one is sent as generated, so the
checks still see the server refuse it.
"""

import itertools

import schemathesis

_COUNTER = itertools.count(1)


def _well_formed(value):
    return isinstance(value, str) and 1 <= len(value) <= 255 and all(
        " " <= c <= "~" for c in value
    )


@schemathesis.hook
def map_headers(context, headers):
    # At generation, so the case carries the key it is sent with: the checks' follow-up
    # requests (the same case without Authorization, say) then send what it says.
    if not headers:
        return headers
    for name in list(headers):
        if name.lower() == "idempotency-key" and _well_formed(headers[name]):
            headers[name] = f"st-{next(_COUNTER)}"
    return headers
