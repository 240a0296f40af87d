"""An nftables table as data, written out whole or as the change from an older one.

Replacing the whole table is simplest, but with 1,000 Services x 10 endpoints it
costs seconds of kernel work, and it empties the sessionAffinity sets. So once a
table is in place the proxy sends only the difference: new chains, changed chains
flushed and refilled, map elements deleted and added, dead chains and sets deleted.
Both forms are one ``nft -f`` transaction, so the switch is atomic either way.
"""

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Chain:
    name: str
    hook: str = ""                # "type ... hook ... priority ...;" for base chains
    rules: tuple = ()


@dataclass(frozen=True)
class NamedSet:
    kind: str                     # "set" or "map"
    name: str
    body: tuple = ()              # "type ...;", "flags ...;", "timeout ...;", "elements ...;"


@dataclass(frozen=True)
class Ruleset:
    """One table: sets and maps, chains (each after the chains it jumps to), elements."""

    table: str
    sets: tuple = ()
    chains: tuple = ()
    elements: tuple = field(default=())      # ((map name, ((key, verdict), ...)), ...)
    family: str = "ip"                       # "inet" for a table of IPv4 and IPv6 rules

    def script(self):
        """Replace the table with this one (delete and recreate, one transaction)."""
        t = f"{self.family} {self.table}"
        lines = [f"add table {t}", f"delete table {t}", f"table {t} {{"]
        for item in self.sets:
            lines += [f"\t{item.kind} {item.name} {{", *(f"\t\t{b}" for b in item.body), "\t}"]
        for chain in self.chains:
            lines.append(f"\tchain {chain.name} {{")
            if chain.hook:
                lines.append(f"\t\t{chain.hook}")
            lines += [f"\t\t{rule}" for rule in chain.rules] + ["\t}"]
        lines.append("}")
        # Elements last: they name chains, and the chains' rules name the maps.
        for name, entries in self.elements:
            if entries:
                lines.append(f"add element {t} {name} {{")
                lines += [f"\t{key} : {verdict}," for key, verdict in entries]
                lines.append("}")
        return "\n".join(lines) + "\n"


def _structure_differs(old, new):
    """Whether base chains, or a set kept by name, changed: then replace the table."""
    base = lambda rs: {c.name: c for c in rs.chains if c.hook}   # noqa: E731
    old_sets = {s.name: s for s in old.sets}
    return (old.table != new.table or old.family != new.family or base(old) != base(new)
            or any(s.name in old_sets and old_sets[s.name] != s for s in new.sets))


def update_script(old, new):
    """The script turning table ``old`` into ``new``; None when only a full replace will do."""
    if _structure_differs(old, new):
        return None
    t = f"{new.family} {new.table}"
    old_chains = {c.name: c for c in old.chains}
    new_chains = {c.name: c for c in new.chains}
    added = [c for c in new.chains if c.name not in old_chains]
    changed = [c for c in new.chains if c.name in old_chains and old_chains[c.name] != c]
    removed = [c for c in old.chains if c.name not in new_chains]
    new_set_names = {s.name for s in new.sets}
    old_set_names = {s.name for s in old.sets}
    old_elements, new_elements = dict(old.elements), dict(new.elements)

    lines = [f"add table {t}"]
    for item in new.sets:
        if item.name not in old_set_names:
            lines.append(f"add {item.kind} {t} {item.name} {{ {' '.join(item.body)} }}")
    lines += [f"add chain {t} {c.name}" for c in added]
    for name in sorted(set(old_elements) | set(new_elements)):
        before, after = dict(old_elements.get(name, ())), dict(new_elements.get(name, ()))
        gone = [k for k, v in before.items() if after.get(k) != v]
        if gone:
            lines.append(f"delete element {t} {name} {{ {', '.join(gone)} }}")
    lines += [f"flush chain {t} {c.name}" for c in changed + removed]
    for chain in added + changed:
        lines += [f"add rule {t} {chain.name} {rule}" for rule in chain.rules]
    for name in sorted(new_elements):
        before, after = dict(old_elements.get(name, ())), dict(new_elements[name])
        fresh = [f"{k} : {v}" for k, v in after.items() if before.get(k) != v]
        if fresh:
            lines.append(f"add element {t} {name} {{ {', '.join(fresh)} }}")
    lines += [f"delete chain {t} {c.name}" for c in removed]
    for item in old.sets:
        if item.name not in new_set_names:
            lines.append(f"delete {item.kind} {t} {item.name}")
    return "\n".join(lines) + "\n"
