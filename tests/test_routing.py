"""routing: which policy rule and route entry explain the kernel's answer, on pyroute2-shaped dumps.

Rules and routes are built as pyroute2 fibmsg/rtmsg messages, encoded to netlink bytes and decoded
again before `.dump()`, so they have exactly the shape `IPRoute().get_rules()`/`get_routes()` give.
Interface indexes: 5 = br0 (LAN), 6 = san0, 7 = ring1.
"""

from __future__ import annotations

from typing import Any

from pyroute2.netlink.rtnl.fibmsg import fibmsg
from pyroute2.netlink.rtnl.rtmsg import rtmsg

from verifier.routing import best_route, describe_rule, explain, matching_rules, rule_table, table_name

BR0, SAN0, RING1 = 5, 6, 7
DEST = "198.18.0.12"


def _dump(cls: type, fields: dict[str, Any], attrs: list[list[Any]]) -> dict[str, Any]:
    msg = cls()
    msg.load({**fields, "attrs": attrs})
    msg.encode()
    again = cls(msg.data)
    again.decode()
    return again.dump()


def rule(prio: int | None, table: int, dst: str | None = None, dst_len: int = 0, **sel: Any) -> dict[str, Any]:
    attrs: list[list[Any]] = [["FRA_TABLE", table]]
    if prio is not None:  # the kernel leaves FRA_PRIORITY out of priority 0 (the local rule)
        attrs.append(["FRA_PRIORITY", prio])
    if dst:
        attrs.append(["FRA_DST", dst])
    for key, name in (("src", "FRA_SRC"), ("fwmark", "FRA_FWMARK"), ("iif", "FRA_IIFNAME"), ("oif", "FRA_OIFNAME")):
        if key in sel:
            attrs.append([name, sel[key]])
    fields = {
        "family": 2,
        "dst_len": dst_len,
        "src_len": sel.get("src_len", 0),
        "tos": 0,
        "table": table if table < 256 else 252,  # RT_TABLE_COMPAT when the id needs FRA_TABLE
        "action": sel.get("action", 1),
        "flags": 0,
    }
    return _dump(fibmsg, fields, attrs)


def route(dst: str | None, dst_len: int, oif: int, table: int = 254, kind: int = 1, gw: str | None = None) -> dict:
    attrs: list[list[Any]] = [["RTA_TABLE", table]]
    if dst:
        attrs.append(["RTA_DST", dst])
    if gw:
        attrs.append(["RTA_GATEWAY", gw])
    attrs.append(["RTA_OIF", oif])
    fields = {"family": 2, "dst_len": dst_len, "src_len": 0, "tos": 0, "table": table, "proto": 4}
    return _dump(rtmsg, {**fields, "scope": 0, "type": kind, "flags": 0}, attrs)


LOCAL = rule(None, 255)
TO_DEST = rule(100, 100, DEST, 32)
FWMARK = rule(50, 200, fwmark=0x10)
FROM_SAN1 = rule(60, 200, src="198.18.1.0", src_len=24)
IIF_ETH9 = rule(70, 200, iif="eth9")
IIF_LO = rule(80, 300, iif="lo")
PROHIBIT = rule(90, 0, action=8)  # FR_ACT_PROHIBIT: not a table lookup
MAIN = rule(32766, 254)
DEFAULT = rule(32767, 253)
RULES = [MAIN, DEFAULT, FWMARK, FROM_SAN1, TO_DEST, IIF_ETH9, PROHIBIT, LOCAL]

TABLES = {
    255: [route("198.18.0.11", 32, SAN0, 255, kind=2), route("198.18.0.255", 32, SAN0, 255, kind=3)],
    254: [
        route(None, 0, BR0, gw="203.0.113.1"),
        route("203.0.113.0", 24, BR0),
        route("198.18.0.0", 24, BR0),  # the wrong link: main sends the SAN subnet out of br0
        route("198.51.100.0", 24, RING1),
    ],
    253: [],
    100: [route(DEST, 32, SAN0, 100)],
    200: [route(None, 0, RING1, 200)],
    300: [],
}


def tables(t: int) -> list[dict[str, Any]]:
    return TABLES.get(t, [])


def test_messages_have_pyroute2_dump_shape() -> None:
    assert TO_DEST["dst_len"] == 32 and ["FRA_DST", DEST] in TO_DEST["attrs"]
    assert ["FRA_PRIORITY", 100] in TO_DEST["attrs"]
    assert TABLES[100][0]["attrs"] == [["RTA_TABLE", 100], ["RTA_DST", DEST], ["RTA_OIF", SAN0]]


def test_only_rules_an_unbound_local_flow_can_match() -> None:
    # Priority order; fwmark, a source selector, a foreign iif and a non-lookup action never match.
    assert matching_rules(RULES, DEST) == [LOCAL, TO_DEST, MAIN, DEFAULT]
    assert matching_rules(RULES, "198.18.0.99") == [LOCAL, MAIN, DEFAULT]
    assert matching_rules([*RULES, IIF_LO], "198.18.0.99") == [LOCAL, IIF_LO, MAIN, DEFAULT]


def test_policy_rule_wins_over_main() -> None:
    chosen, entry = explain(RULES, tables, DEST, SAN0)
    assert chosen is TO_DEST
    assert entry is TABLES[100][0]
    # Without knowing the interface the first rule whose table routes DEST still wins.
    assert explain(RULES, tables, DEST, None)[0] is TO_DEST


def test_without_the_rule_main_answers() -> None:
    rules = [r for r in RULES if r is not TO_DEST]
    chosen, entry = explain(rules, tables, DEST, BR0)
    assert chosen is MAIN
    assert entry is TABLES[254][2]  # 198.18.0.0/24 beats the default route


def test_oif_must_match_the_kernels_answer() -> None:
    # The kernel said br0: table 100 routes DEST out of san0, so it cannot be the explanation.
    chosen, entry = explain(RULES, tables, DEST, BR0)
    assert chosen is MAIN and entry is TABLES[254][2]
    # Nothing leaves by an interface no table uses.
    assert explain(RULES, tables, DEST, 42) == (None, None)


def test_local_and_broadcast_entries_are_not_unicast() -> None:
    # 198.18.0.255 is in the local table as a broadcast route (type 3): skipped, main explains it.
    chosen, entry = explain(RULES, tables, "198.18.0.255", None)
    assert chosen is MAIN and entry is TABLES[254][2]


def test_longest_prefix_wins_whatever_the_order() -> None:
    routes = [
        route(None, 0, BR0, gw="203.0.113.1"),
        route("198.18.0.0", 16, BR0),
        route("198.18.0.0", 24, SAN0),
        route("198.18.0.12", 32, RING1),
    ]
    for entries in (routes, routes[::-1]):
        assert best_route(entries, "198.18.0.12", None) is routes[3]
        assert best_route(entries, "198.18.0.50", None) is routes[2]
        assert best_route(entries, "198.18.7.1", None) is routes[1]
        assert best_route(entries, "8.8.8.8", None) is routes[0]
    # Restricted to an interface, the best entry leaving by it.
    assert best_route(routes, "198.18.0.12", SAN0) is routes[2]
    assert best_route(routes, "198.18.0.12", BR0) is routes[1]


def test_default_route_matches_anything() -> None:
    default = route(None, 0, BR0, gw="203.0.113.1")
    for dst in ("1.1.1.1", "198.18.0.12", "255.255.255.254", "10.0.0.1"):
        assert best_route([default], dst, None) is default
    assert best_route([route("10.0.0.0", 8, BR0)], "11.0.0.1", None) is None


def test_describe_rule_in_ip_rule_words() -> None:
    assert describe_rule(TO_DEST) == "100: from all to 198.18.0.12/32 lookup 100"
    assert describe_rule(MAIN) == "32766: from all lookup main"
    assert describe_rule(DEFAULT) == "32767: from all lookup default"
    assert describe_rule(LOCAL) == "0: from all lookup local"
    assert describe_rule(FROM_SAN1) == "60: from 198.18.1.0/24 lookup 200"
    assert describe_rule(FWMARK) == "50: from all fwmark 0x10 lookup 200"
    assert describe_rule(IIF_ETH9) == "70: from all iif eth9 lookup 200"


def test_table_ids_and_names() -> None:
    big = rule(10, 1000)
    assert big["table"] == 252  # the header field cannot hold it
    assert rule_table(big) == 1000
    assert describe_rule(big) == "10: from all lookup 1000"
    assert [table_name(t) for t in (253, 254, 255, 100, None)] == ["default", "main", "local", "100", "?"]
