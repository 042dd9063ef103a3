"""The predict stage: where QEMU will connect (uri), the route chain it follows (chain), the link
speeds along it (links), and the plan made of them before anything moves (plan)."""

from verifier.predict.chain import bond_pick, bond_reason, link_reason, pick_reason, pick_text, predict
from verifier.predict.links import chain_mbps, is_ring, slower_links
from verifier.predict.plan import make_plan, predicted_verdict
from verifier.predict.uri import (
    MigrationTarget,
    dest_on_link,
    link_subnets,
    migration_target,
    refuse_unresolved,
    return_uri,
    uri_host,
    via_uri,
)

__all__ = [
    "MigrationTarget",
    "bond_pick",
    "bond_reason",
    "chain_mbps",
    "dest_on_link",
    "is_ring",
    "link_reason",
    "link_subnets",
    "make_plan",
    "migration_target",
    "pick_reason",
    "pick_text",
    "predict",
    "predicted_verdict",
    "refuse_unresolved",
    "return_uri",
    "slower_links",
    "uri_host",
    "via_uri",
]
