"""The simulated site's physics: closed-form energies against numeric integration."""

from __future__ import annotations

import math

import pytest

from dcmeter.sim.site import SimSite, SimSiteConfig, Swing

T0 = 1_700_000_000.0


def trapezoid(f, a: float, b: float, n: int = 20_000) -> float:
    h = (b - a) / n
    return h * (sum(f(a + i * h) for i in range(1, n)) + (f(a) + f(b)) / 2)


@pytest.mark.parametrize("phase", [0.0, 1.0, 4.0])
def test_swing_integral_is_the_integral(phase: float) -> None:
    s = Swing(T0, base=0.5, amp=0.3, period_s=37.0, phase=phase)
    for a, b in [(T0, T0 + 10), (T0 + 3.3, T0 + 100.7), (T0 + 50, T0 + 51)]:
        exact = s.integral(b) - s.integral(a)
        assert exact == pytest.approx(trapezoid(s.at, a, b), rel=1e-7)


def test_device_energies_and_site_totals_are_consistent() -> None:
    site = SimSite.build(SimSiteConfig(servers=5, switches=2, storage=1, period_s=60), T0)
    a, b = T0 + 7, T0 + 187
    for d in site.it_devices():
        assert d.energy_j(b) - d.energy_j(a) == pytest.approx(trapezoid(d.power_w, a, b, 4000), rel=1e-7)
        assert d.idle_w <= d.power_w(a) <= d.max_w
    it_j = trapezoid(site.it_w, a, b, 4000)
    total_j = trapezoid(site.total_w, a, b, 4000)
    truth = site.truth(a, b)
    assert truth["it"] == pytest.approx(it_j / 3.6e6, rel=1e-7)
    assert truth["total"] == pytest.approx(total_j / 3.6e6, rel=1e-7)
    assert truth["pue"] == pytest.approx(total_j / it_j, rel=1e-7)
    assert 1.2 < truth["pue"] < 1.6
    servers_j = sum(trapezoid(d.power_w, a, b, 4000) for d in site.servers)
    assert truth["servers"] == pytest.approx(servers_j / 3.6e6, rel=1e-7)
    assert 0 < truth["u_compute"] < 1 and 0 < truth["u_storage"] < 1


def test_meters_show_the_integrals() -> None:
    cfg = SimSiteConfig(servers=3, switches=1, storage=0)
    site = SimSite.build(cfg, T0)
    m0, m1 = site.meter_values("total", T0 + 10), site.meter_values("total", T0 + 70)
    assert m1["energy_import_kwh"] - m0["energy_import_kwh"] == pytest.approx(
        site.truth(T0 + 10, T0 + 70)["total"], rel=1e-9
    )
    assert m0["power_w"] == pytest.approx(site.total_w(T0 + 10))
    it = site.meter_values("it", T0)
    assert it["energy_import_kwh"] == pytest.approx(cfg.it_start_kwh)


def test_loads_stay_in_range_and_layout_is_reproducible() -> None:
    cfg = SimSiteConfig(servers=50, switches=3, storage=2)
    one, two = SimSite.build(cfg, T0), SimSite.build(cfg, T0)
    other = SimSite.build(cfg.model_copy(update={"seed": 2}), T0)
    assert one == two
    assert one.servers != other.servers
    for d in one.it_devices():
        assert d.load.base - abs(d.load.amp) >= 0 and d.load.base + abs(d.load.amp) <= 1
    port = one.switches[0].ports[0]
    octets = port.in_octets(T0 + 100) - port.in_octets(T0 + 40)
    rate = trapezoid(port.inbound.at, T0 + 40, T0 + 100) * port.speed_bps / 8
    assert octets == pytest.approx(rate, rel=1e-7)
    assert [p.alias for p in one.switches[0].ports].count("uplink") == 2
    assert not math.isnan(one.truth(T0, T0 + 1)["pue"])


def test_the_rest_of_the_site_counts_as_it_but_not_as_servers() -> None:
    small = SimSite.build(SimSiteConfig(servers=2), T0)
    big = SimSite.build(SimSiteConfig(servers=2, other_it_kw=500), T0)
    t = T0 + 30
    assert small.servers == big.servers
    assert 300_000 < big.it_w(t) - small.it_w(t) < 700_000
    assert big.truth(T0, t)["servers"] == small.truth(T0, t)["servers"]
    assert big.truth(T0, t)["pue"] < small.truth(T0, t)["pue"]
