"""asyncssh, imported the one way nodewb imports it: without the CryptographyDeprecationWarning
lines that asyncssh's DSA support raises on every import under newer cryptography (seen with 51)."""

import warnings

from cryptography.utils import CryptographyDeprecationWarning

warnings.filterwarnings("ignore", category=CryptographyDeprecationWarning, module=r"asyncssh(\.|$)")

import asyncssh  # noqa: E402
from asyncssh.config import ConfigParseError, SSHClientConfig  # noqa: E402
from asyncssh.pattern import WildcardPatternList  # noqa: E402

__all__ = ["ConfigParseError", "SSHClientConfig", "WildcardPatternList", "asyncssh"]
