"""A window's scope: the sources of the site file it covers (general and ai windows).

A general window may cover some of the site's device groups, or some hosts of a group (the
load U of a group is then the mean over the hosts in scope, its N and P unchanged); an AI
window the servers under test and their GPUs, ports and storage in scope. The site's energy
sources (total, IT, green) always count whole: an infrastructure window has no scope.
"""

from __future__ import annotations

from collections.abc import Sequence

from dcmeter.collectors.evaluation.site import Site

AI_ROLES = ("servers", "gpus", "network", "storage")


def scope_ids(kind: str, site: Site) -> list[str]:
    """The source ids a `kind` window's scope may name."""
    if kind == "general" and site.general is not None:
        return sorted({s for g in site.general.groups for s in g.sources})
    if kind == "ai" and site.ai is not None:
        return sorted({s for role in AI_ROLES for s in getattr(site.ai, role)})
    return []


def scope_error(kind: str, site: Site, scope: Sequence[str]) -> str | None:
    """Why `scope` cannot be given to a `kind` window of `site`, or None when it can."""
    if kind == "infrastructure":
        return "scope applies to general and ai windows; infrastructure covers the whole site"
    allowed = scope_ids(kind, site)
    unknown = sorted(set(scope) - set(allowed))
    if unknown:
        return (
            f"scope: {', '.join(unknown)} not among the site file's {kind} sources"
            f" ({', '.join(allowed) or f'the site file has no [{kind}] section'})"
        )
    narrowed = scoped(site, kind, scope)
    if kind == "general" and narrowed.general is not None and not any(
        g.kind == "compute" for g in narrowed.general.groups
    ):
        return "scope names no source of a compute group (servers); CEE needs one"
    if kind == "ai" and narrowed.ai is not None and not narrowed.ai.servers:
        return "scope names no server under test (ai.servers)"
    return None


def scoped(site: Site, kind: str, scope: Sequence[str] | None) -> Site:
    """The site file as a `kind` window with `scope` sees it (the whole site for None)."""
    if not scope:
        return site
    keep = set(scope)
    if kind == "general" and site.general is not None:
        groups = [
            g.model_copy(update={"sources": [s for s in g.sources if s in keep]})
            for g in site.general.groups
            if keep.intersection(g.sources)
        ]
        return site.model_copy(
            update={"general": site.general.model_copy(update={"groups": groups})}
        )
    if kind == "ai" and site.ai is not None:
        roles = {r: [s for s in getattr(site.ai, r) if s in keep] for r in AI_ROLES}
        return site.model_copy(update={"ai": site.ai.model_copy(update=roles)})
    return site
