"""URIs in text people read: logs, errors, reprs.

A URI may carry credentials (``s3://KEY:SECRET@bucket/key``, ``…?access_key=…``);
:func:`redact` masks them so that a message can name the URI it is about.

>>> redact("s3://KEY:SECRET@bucket/a.mp4?endpoint_override=h:9000&secret_key=S")
's3://***@bucket/a.mp4?endpoint_override=h:9000&secret_key=***'
"""

from __future__ import annotations

import re

__all__ = ["redact"]

_USERINFO = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*://)[^/@\s]*@")
_SECRET_PARAM = re.compile(r"(?i)([?&][^=&\s]*(?:key|secret|token|password)[^=&\s]*=)[^&\s#]*")


def redact(text: str) -> str:
    """``text`` with URI credentials masked: the userinfo of every URI (``user:pass@``
    becomes ``***@``) and the value of every query parameter whose name contains ``key``,
    ``secret``, ``token`` or ``password``. Anything else is left as it is."""
    return _SECRET_PARAM.sub(r"\1***", _USERINFO.sub(r"\1***@", text))
