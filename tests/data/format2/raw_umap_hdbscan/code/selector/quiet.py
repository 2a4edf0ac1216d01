"""Known noise, silenced where it arises: warnings a user cannot act on, each named by the call that
raises it. ``SELECTOR_VERBOSE=1`` turns every filter here off and shows library logging too."""

from __future__ import annotations

import contextlib
import os
import warnings

VERBOSE_ENV = "SELECTOR_VERBOSE"


def verbose() -> bool:
    """Whether the user asked to see everything (``SELECTOR_VERBOSE=1``)."""
    return os.environ.get(VERBOSE_ENV, "").strip().lower() in ("1", "true", "yes", "on")


@contextlib.contextmanager
def known_noise(*messages: str, category: type[Warning] = Warning):
    """Inside this block, warnings of ``category`` whose message starts with (a regex in) ``messages``
    are not shown — unless ``SELECTOR_VERBOSE=1``. Other warnings pass as usual."""
    with warnings.catch_warnings():
        if not verbose():
            for message in messages:
                warnings.filterwarnings("ignore", message=message, category=category)
        yield
