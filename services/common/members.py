"""Who a member is: a member id belongs to one tenant (a SACCO), and its features are kept under
a key that names both.

Two SACCOs may both number a member M-0001; they are different people. Feast's online and offline
stores and the feature store's tables are keyed by `member_key(tenant, member_id)`, so one
tenant's mobile-money, repayments and profile can never feed another tenant's decision, and
erasing one tenant's member leaves the other's alone. Neither pattern allows "/", so the key
splits back unambiguously.
"""

from __future__ import annotations

import re

#: What a member id (and a tenant) may look like: ids from core banking, never free text.
MEMBER_ID_PATTERN = r"^[A-Za-z0-9_.:-]{1,64}$"
TENANT_PATTERN = r"^[A-Za-z0-9_.-]{1,64}$"
KEY_SEPARATOR = "/"
#: The tenant a developer's SACCO is: the gateway's development key and tokens act for it, the
#: simulator publishes for it and the synthetic loan book is its. Refused outside development
#: mode wherever settings name it (services.common.settings).
DEV_TENANT = "dev-sacco"


def member_key(tenant_id: str, member_id: str) -> str:
    """The key of one tenant's member in every store of features."""
    if not re.fullmatch(TENANT_PATTERN, tenant_id):
        raise ValueError(f"tenant {tenant_id!r} must match {TENANT_PATTERN}")
    if not member_id or KEY_SEPARATOR in member_id:
        raise ValueError(f"member id {member_id!r} is empty or holds {KEY_SEPARATOR!r}")
    return f"{tenant_id}{KEY_SEPARATOR}{member_id}"


def split_member_key(key: str) -> tuple[str, str]:
    """(tenant, member id) of a `member_key`."""
    tenant, separator, member = key.partition(KEY_SEPARATOR)
    if not separator or not tenant or not member:
        raise ValueError(f"{key!r} is not a tenant-scoped member key")
    return tenant, member
