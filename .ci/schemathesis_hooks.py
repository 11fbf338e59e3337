"""Schemathesis hooks for every run of `.ci/schemathesis`: the password rules no schema can state.

The document states the new-password rules that JSON Schema can express (length, not one
character repeated) and names the rest in the field's description: a password on the list of
very common ones, the account's own email or the part before its `@`, the product's name with
little around it. Hypothesis readily reuses one generated string in several fields, so a
register body whose password is its own email's local part is "schema-valid" and rightly 422.
This filter keeps such bodies out of the positive data, applying exactly the rules of
`Password::check_new`, with the same list of common passwords.
"""

from pathlib import Path

import schemathesis

COMMON = frozenset(
    line
    for line in (Path(__file__).resolve().parent.parent / "src/domain/common_passwords.txt")
    .read_text(encoding="utf-8")
    .splitlines()
    if line
)
# What Rust's `str::trim` removes (Unicode White_Space).
WHITESPACE = "\t\n\x0b\x0c\r \x85\xa0\u1680" + "".join(map(chr, range(0x2000, 0x200B))) + "\u2028\u2029\u202f\u205f\u3000"


def refused_by_policy(password: str, email: str | None) -> bool:
    lower = password.lower()
    if len(set(lower)) <= 1:
        return True
    if email is not None:
        email = email.strip(WHITESPACE).lower()
        if lower in (email, email.split("@")[0]):
            return True
    return ("cloudheed" in lower and len(lower) < 16) or lower in COMMON


@schemathesis.hook
def filter_body(context, body):
    operation = context.operation
    if operation is None or (operation.method.upper(), operation.path) != ("POST", "/v1/auth/register"):
        return True
    if not isinstance(body, dict) or not isinstance(body.get("password"), str):
        return True
    email = body.get("email")
    return not refused_by_policy(body["password"], email if isinstance(email, str) else None)
