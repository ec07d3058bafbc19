"""TimeAnomalyBench: controllable synthetic scenarios with known anomaly semantics.

Each scenario is a multivariate series built from named parts (trend, several seasonalities
tied to wall-clock time, AR(1) noise, regime switches, shared latent factors that correlate
the channels) plus a short domain text, and a hidden rule bank. Anomalies are injected into
the test part with the same operators the PAG sampler uses, so every labelled step carries its
morphology and the rule that made it. A prior-mining agent sees the series, a plot and the
text; its bank can then be scored against the hidden one.

Twelve scenarios (IT, industrial, energy, medical, traffic, utilities; sampled every second to
every hour) are split once into a ``tune`` and a ``validate`` fold of six (:data:`SPLITS`,
:func:`scenarios_in`).

``generate(name, seed)`` returns a :class:`BenchSeries`; ``write_bench`` writes a folder with
``series.csv`` (values and 0/1 labels, readable by ``load_series``), ``labels.csv`` (per-step
morphology and rule), ``events.json``, ``domain.md``, ``meta.json`` and ``hidden/bank.yaml``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, model_validator
from scipy.signal import lfilter

from anomalygraph.core.errors import ConfigError, DataError
from anomalygraph.data.series import TimeSeries

GENERATOR_VERSION = "timeanomalybench/1"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Seasonality(_Model):
    """A cycle tied to wall-clock time (UTC): a sine, or a pulse (e.g. office hours)."""

    period_s: float = Field(gt=0, description="period in seconds (86400: daily, 604800: weekly)")
    amplitude: float
    phase: float = Field(0.0, ge=0, le=1, description="sine: shift as a share of the period; pulse: its centre")
    shape: Literal["sine", "pulse"] = "sine"
    width: float = Field(0.15, gt=0, le=0.5, description="pulse: half-width as a share of the period")
    weekdays_only: bool = Field(False, description="zero on Saturdays and Sundays")

    def values(self, seconds: np.ndarray, weekday: np.ndarray) -> np.ndarray:
        frac = np.mod(seconds / self.period_s, 1.0)
        if self.shape == "sine":
            out = np.sin(2 * np.pi * (frac - self.phase))
        else:
            d = np.abs(frac - self.phase)
            d = np.minimum(d, 1 - d)
            out = np.exp(-((d / self.width) ** 2))
        if self.weekdays_only:
            out = np.where(weekday < 5, out, 0.0)
        return self.amplitude * out


class Factor(_Model):
    """A shared latent driver (traffic, load, occupancy); channels load on it, which correlates them."""

    name: str
    seasonal: list[Seasonality] = Field(default_factory=list)
    ar: float = Field(0.9, ge=0, lt=1, description="AR(1) coefficient of its noise")
    noise: float = Field(0.05, ge=0)


class Channel(_Model):
    name: str
    unit: str
    description: str = ""
    base: float
    trend_per_day: float = 0.0
    seasonal: list[Seasonality] = Field(default_factory=list)
    loadings: dict[str, float] = Field(default_factory=dict, description="factor name -> weight")
    regime_offsets: list[float] = Field(default_factory=list, description="added in each regime")
    regime_noise: list[float] = Field(default_factory=list, description="noise multiplier in each regime")
    lag_steps: int = Field(0, ge=0, le=10_000, description="first-order lag of the signal (thermal inertia)")
    noise: float = Field(ge=0)
    ar: float = Field(0.5, ge=0, lt=1)
    floor: float | None = None
    ceiling: float | None = None


class Regimes(_Model):
    """Operating regimes that switch as a semi-Markov chain (dwell ≥ min_dwell_steps)."""

    names: list[str] = Field(min_length=2)
    mean_dwell_steps: float = Field(gt=0)
    min_dwell_steps: int = Field(1, ge=1)


class ScenarioSpec(_Model):
    """Everything that defines a scenario; the hidden bank is a built-in rule bank."""

    name: str
    title: str
    description: str
    freq: str = Field(description="pandas frequency of the timestamps, e.g. 5min")
    start: str = "2024-03-04 00:00"
    length: int = Field(ge=500, le=2_000_000)
    train_fraction: float = Field(0.5, gt=0, lt=1)
    factors: list[Factor] = Field(default_factory=list)
    channels: list[Channel] = Field(min_length=1)
    regimes: Regimes | None = None
    bank: str = Field(description="built-in hidden bank")
    n_events: int = Field(12, ge=1, le=10_000)
    min_gap_steps: int = Field(24, ge=0, description="normal steps kept between two anomalies")
    min_effect: float = Field(1.0, ge=0, description="redraw an anomaly smaller than this many local scales")

    @model_validator(mode="after")
    def _check(self) -> ScenarioSpec:
        factors = {f.name for f in self.factors}
        n_regimes = len(self.regimes.names) if self.regimes else 1
        for ch in self.channels:
            for name in ch.loadings:
                if name not in factors:
                    raise ValueError(f"channel '{ch.name}' loads on unknown factor '{name}'")
            for field in ("regime_offsets", "regime_noise"):
                given = getattr(ch, field)
                if given and len(given) != n_regimes:
                    raise ValueError(f"channel '{ch.name}': {field} has {len(given)} values for {n_regimes} regimes")
        return self

    @property
    def step_seconds(self) -> float:
        return pd.Timedelta(pd.tseries.frequencies.to_offset(self.freq)).total_seconds()


class AnomalyEvent(_Model):
    """One injected anomaly: where, what, on which channels, with which drawn parameters."""

    start: int = Field(description="first anomalous row (inclusive)")
    end: int = Field(description="last anomalous row (inclusive)")
    start_time: str
    rule_id: str
    operator: str
    morphology: str
    channels: list[str]
    params: dict[str, float | str]
    effect: float = Field(description="largest change in local robust scales")


@dataclass
class BenchSeries:
    """A generated scenario: the series with labels, the clean version, per-step semantics and events."""

    spec: ScenarioSpec
    series: TimeSeries  # values with anomalies, labels, timestamps, train split
    clean: np.ndarray  # [T, D] the same series before injection
    morphology: np.ndarray  # [T] str, "" on normal steps
    rule_ids: np.ndarray  # [T] str, "" on normal steps
    events: list[AnomalyEvent]
    seed: int

    @property
    def bank(self) -> Any:
        from anomalygraph.rulebank.store import load_bank

        return load_bank(self.spec.bank)


# --------------------------------------------------------------------- scenarios
_DAY, _WEEK = 86400.0, 604800.0

SCENARIOS: dict[str, ScenarioSpec] = {
    spec.name: spec
    for spec in (
        ScenarioSpec(
            name="web_server",
            title="Web service: traffic, CPU, latency, errors and memory",
            description=(
                "A customer-facing web service behind a load balancer, sampled every 5 minutes. Traffic "
                "follows a daily cycle that peaks in the (UTC) afternoon and is lighter at weekends; CPU and "
                "p95 latency rise with traffic; the error rate is normally well under 1 %. Memory creeps up "
                "slowly between restarts. The team deploys a few times a week and a release can change how "
                "much CPU each request costs. On-call notes mention slow queries at peak, deploys that had to "
                "be rolled back, processes restarted for memory, a metrics agent that sometimes hangs, a "
                "flaky payment dependency, and once a host that was busy at night when nobody was using it."
            ),
            freq="5min",
            length=8064,
            factors=[
                Factor(name="traffic", seasonal=[Seasonality(period_s=_DAY, amplitude=1.0, phase=0.35),
                                                 Seasonality(period_s=_WEEK, amplitude=0.25, phase=0.1)],
                       ar=0.9, noise=0.06),
            ],
            channels=[
                Channel(name="requests_per_s", unit="req/s", description="requests served per second",
                        base=400, loadings={"traffic": 300}, noise=12, ar=0.5, floor=0),
                Channel(name="cpu_pct", unit="%", description="mean CPU utilisation of the web tier",
                        base=24, loadings={"traffic": 14}, regime_offsets=[0, 6], noise=1.2, ar=0.6, floor=0, ceiling=100),
                Channel(name="latency_p95_ms", unit="ms", description="95th percentile response time",
                        base=110, loadings={"traffic": 30}, noise=4, ar=0.3, floor=1),
                Channel(name="error_rate_pct", unit="%", description="share of responses with status 5xx",
                        base=0.4, loadings={"traffic": 0.08}, noise=0.04, ar=0.3, floor=0),
                Channel(name="memory_pct", unit="%", description="resident memory of the app servers",
                        base=52, trend_per_day=0.3, regime_offsets=[0, -3], noise=0.3, ar=0.95),
            ],
            regimes=Regimes(names=["release_a", "release_b"], mean_dwell_steps=864, min_dwell_steps=288),
            bank="scenario_web_server",
            n_events=12,
        ),
        ScenarioSpec(
            name="pump",
            title="Centrifugal pump: flow, pressure, current, vibration and bearing temperature",
            description=(
                "A centrifugal water pump in a treatment plant, sampled every minute. It runs at a low or a "
                "high duty set by the control room, switching every few hours; flow, discharge pressure, "
                "motor current and vibration all follow the duty, and demand drifts over the day. Bearing "
                "temperature follows load slowly (thermal inertia) and the daily ambient cycle. Maintenance "
                "logs mention cavitation at high duty, a bearing replaced after it ran hot, an impeller found "
                "damaged, a flow transmitter with a loose loop, a clogged pressure impulse line, and a "
                "leaking mechanical seal."
            ),
            freq="1min",
            length=14400,
            factors=[Factor(name="demand", seasonal=[Seasonality(period_s=_DAY, amplitude=0.4, phase=0.3)], ar=0.98, noise=0.02)],
            channels=[
                Channel(name="flow_m3h", unit="m³/h", description="delivered flow", base=120,
                        loadings={"demand": 25}, regime_offsets=[0, 45], noise=2, ar=0.6, floor=0),
                Channel(name="pressure_bar", unit="bar", description="discharge pressure", base=6.0,
                        loadings={"demand": 0.6}, regime_offsets=[0, 1.2], noise=0.05, ar=0.6),
                Channel(name="motor_current_a", unit="A", description="motor current", base=38,
                        loadings={"demand": 6}, regime_offsets=[0, 12], noise=0.5, ar=0.5),
                Channel(name="vibration_mm_s", unit="mm/s", description="casing vibration velocity (RMS)", base=2.2,
                        loadings={"demand": 0.4}, regime_offsets=[0, 0.9], regime_noise=[1.0, 1.4], noise=0.12, ar=0.3, floor=0),
                Channel(name="bearing_temp_c", unit="°C", description="drive-end bearing temperature", base=45,
                        seasonal=[Seasonality(period_s=_DAY, amplitude=2.0, phase=0.35)],
                        loadings={"demand": 2}, regime_offsets=[0, 6], lag_steps=60, noise=0.1, ar=0.9),
            ],
            regimes=Regimes(names=["low_duty", "high_duty"], mean_dwell_steps=360, min_dwell_steps=90),
            bank="scenario_pump",
            n_events=14,
        ),
        ScenarioSpec(
            name="building_energy",
            title="Office building: total, HVAC and lighting power, outdoor temperature",
            description=(
                "An office building's energy meters, sampled every 15 minutes: total electrical load, HVAC, "
                "lighting, and the outdoor temperature from a weather feed. Occupancy drives lighting and "
                "part of HVAC on weekdays between about 08:00 and 18:00 UTC; HVAC also follows the outdoor "
                "temperature, which peaks in the afternoon. Some weeks the building runs extended hours. "
                "Facility tickets mention lights left on overnight, an HVAC setpoint entered wrongly, a meter "
                "gateway that froze, demand peaks when equipment starts together, gaps in the weather feed, "
                "and HVAC mornings that started late."
            ),
            freq="15min",
            length=2688,
            factors=[
                Factor(name="occupancy", seasonal=[Seasonality(period_s=_DAY, amplitude=1.0, phase=13 / 24, shape="pulse",
                                                               width=0.16, weekdays_only=True)], ar=0.8, noise=0.04),
                Factor(name="weather", seasonal=[Seasonality(period_s=_DAY, amplitude=1.0, phase=0.375)], ar=0.995, noise=0.04),
            ],
            channels=[
                Channel(name="total_kw", unit="kW", description="main meter", base=40,
                        loadings={"occupancy": 55, "weather": 12}, regime_offsets=[0, 8], noise=2, ar=0.5, floor=0),
                Channel(name="hvac_kw", unit="kW", description="HVAC sub-meter", base=15,
                        loadings={"occupancy": 25, "weather": 12}, regime_offsets=[0, 5], lag_steps=3, noise=1.2, ar=0.5, floor=0),
                Channel(name="lighting_kw", unit="kW", description="lighting sub-meter", base=6,
                        loadings={"occupancy": 28}, regime_offsets=[0, 4], noise=0.6, ar=0.3, floor=2),
                Channel(name="outdoor_temp_c", unit="°C", description="outdoor air temperature (weather feed)", base=24,
                        loadings={"weather": 5}, noise=0.2, ar=0.8),
            ],
            regimes=Regimes(names=["standard_hours", "extended_hours"], mean_dwell_steps=672, min_dwell_steps=192),
            bank="scenario_building_energy",
            n_events=12,
        ),
        ScenarioSpec(
            name="db_server",
            title="Database primary: query rate, connections, replication lag, disk reads, cache hit ratio",
            description=(
                "A PostgreSQL primary with one streaming replica behind an order-processing application, sampled "
                "every minute. The query rate and the number of open connections follow a daily cycle that peaks "
                "in the (UTC) early afternoon. Around 02:00 a nightly batch and the backup read heavily from disk, "
                "leave the replica a second or two behind and cost the buffer cache a few points of hit ratio; "
                "otherwise the replica is well under a second behind and the cache hit ratio sits near 98 %. The "
                "DBA's incident log mentions: the replica falling further and further behind while it waited on a "
                "long-running transaction; the cache hit ratio collapsing after a failover to a cold standby and "
                "recovering over the next quarter of an hour; the backup once started by mistake in office hours; "
                "a connection-pooler bug that, for hours until the pooler was restarted, opened server connections "
                "as traffic fell and closed them as it rose; "
                "and lock contention on a hot table that made the query rate stutter."
            ),
            freq="1min",
            length=14400,
            factors=[
                Factor(name="workload", seasonal=[Seasonality(period_s=_DAY, amplitude=1.0, phase=0.3)], ar=0.95, noise=0.05),
                Factor(name="batch", seasonal=[Seasonality(period_s=_DAY, amplitude=1.0, phase=2 / 24, shape="pulse", width=0.04)],
                       ar=0.9, noise=0.02),
            ],
            channels=[
                Channel(name="queries_per_s", unit="queries/s", description="statements executed per second", base=1800,
                        loadings={"workload": 900, "batch": 300}, noise=40, ar=0.5, floor=0),
                Channel(name="active_connections", unit="connections", description="open server connections", base=120,
                        loadings={"workload": 50, "batch": 10}, noise=4, ar=0.7, floor=0),
                Channel(name="replication_lag_s", unit="s", description="how far the replica is behind the primary", base=0.8,
                        loadings={"workload": 0.3, "batch": 1.5}, noise=0.15, ar=0.6, floor=0),
                Channel(name="disk_read_mb_s", unit="MB/s", description="data read from disk", base=35,
                        loadings={"workload": 15, "batch": 90}, noise=3, ar=0.5, floor=0),
                Channel(name="cache_hit_pct", unit="%", description="share of block reads served from the buffer cache",
                        base=98.5, loadings={"workload": -0.6, "batch": -3}, noise=0.15, ar=0.6, ceiling=100),
            ],
            bank="scenario_db_server",
            n_events=11,
        ),
        ScenarioSpec(
            name="queue_consumer",
            title="Kafka consumer group on Kubernetes: input and output rate, consumer lag, CPU, processing time",
            description=(
                "A stream-processing service on Kubernetes: a consumer group reads order events from a Kafka topic, "
                "enriches them and writes them on; its metrics are scraped every 30 seconds. The input rate follows "
                "customer activity (a daily cycle with its peak in the UTC afternoon), the output rate keeps up with "
                "the input within seconds, and the consumer lag (messages waiting) stays at a few thousand, a little "
                "higher at peak. The pods' CPU use and the p99 processing time rise with load. Post-mortems mention: "
                "a malformed message that made the pods crash and restart over and over, so output kept stopping "
                "for seconds at a time; an upstream team re-sending a stretch of older events after their own "
                "outage; consumer-group rebalances that stalled consumption until the backlog was worked off; the "
                "lag exporter hanging and repeating its last reading; the autoscaler adding and removing pods every "
                "few minutes; and a partition move after which the output rate ran out of step with the input."
            ),
            freq="30s",
            length=11520,
            factors=[Factor(name="traffic", seasonal=[Seasonality(period_s=_DAY, amplitude=1.0, phase=0.3)], ar=0.97, noise=0.06)],
            channels=[
                Channel(name="messages_in_per_s", unit="msg/s", description="messages produced to the input topic",
                        base=2500, loadings={"traffic": 1200}, noise=60, ar=0.5, floor=0),
                Channel(name="messages_out_per_s", unit="msg/s", description="messages the consumers process and emit",
                        base=2500, loadings={"traffic": 1200}, noise=70, ar=0.4, floor=0),
                Channel(name="consumer_lag", unit="messages", description="messages not yet consumed, summed over partitions",
                        base=4000, loadings={"traffic": 1500}, noise=400, ar=0.8, floor=0),
                Channel(name="cpu_cores", unit="cores", description="CPU used by all consumer pods", base=6,
                        loadings={"traffic": 3}, noise=0.25, ar=0.6, floor=0),
                Channel(name="p99_processing_ms", unit="ms", description="99th percentile time to process one message",
                        base=45, loadings={"traffic": 10}, noise=2.5, ar=0.4, floor=1),
            ],
            bank="scenario_queue_consumer",
            n_events=14,
        ),
        ScenarioSpec(
            name="wind_turbine",
            title="Wind turbine SCADA: wind speed, rotor speed, power, gearbox temperature, nacelle vibration",
            description=(
                "A 2 MW onshore wind turbine, from the 10-minute averages of its SCADA system. Power follows the wind "
                "along the power curve and levels off at rated output in strong wind; rotor speed rises with the wind "
                "up to its limit; the gearbox warms with load (slowly) and with the afternoon; nacelle vibration grows "
                "a little with the wind. Wind is gusty and is on average stronger in the afternoon. Some days the grid "
                "operator curtails the farm and the turbine is held well below what the wind would give. The service "
                "log mentions: the nacelle anemometer iced up in freezing fog and stopped turning; the nacelle left "
                "pointing a few degrees off the wind after a yaw sensor was replaced, costing output for hours; a "
                "fouled gearbox oil cooler, the temperature climbing over an afternoon; ice on one blade throwing the "
                "rotor out of balance; and the converter tripping on grid faults, the turbine producing nothing until "
                "it restarted."
            ),
            freq="10min",
            length=4320,
            factors=[Factor(name="wind", seasonal=[Seasonality(period_s=_DAY, amplitude=0.3, phase=0.35)], ar=0.99, noise=0.45)],
            channels=[
                Channel(name="wind_speed_m_s", unit="m/s", description="nacelle anemometer wind speed", base=8,
                        loadings={"wind": 3}, noise=0.4, ar=0.5, floor=0),
                Channel(name="rotor_rpm", unit="rpm", description="rotor speed", base=12, loadings={"wind": 3},
                        regime_offsets=[0, -2], noise=0.3, ar=0.6, floor=0, ceiling=16),
                Channel(name="power_kw", unit="kW", description="active power delivered to the grid", base=950,
                        loadings={"wind": 850}, regime_offsets=[0, -500], noise=40, ar=0.5, floor=0, ceiling=2000),
                Channel(name="gearbox_temp_c", unit="°C", description="gearbox oil sump temperature", base=58,
                        seasonal=[Seasonality(period_s=_DAY, amplitude=1.5, phase=0.35)], loadings={"wind": 4},
                        regime_offsets=[0, -2], lag_steps=6, noise=0.3, ar=0.9),
                Channel(name="nacelle_vibration_mm_s", unit="mm/s", description="drive-train vibration velocity (RMS)",
                        base=1.8, loadings={"wind": 0.4}, noise=0.1, ar=0.3, floor=0),
            ],
            regimes=Regimes(names=["free_running", "curtailed"], mean_dwell_steps=288, min_dwell_steps=36),
            bank="scenario_wind_turbine",
            n_events=10,
        ),
        ScenarioSpec(
            name="cnc_machine",
            title="CNC machining centre: spindle power and speed, axis load, vibration, coolant temperature",
            description=(
                "A CNC machining centre milling the same aluminium part over and over, logged every second. Each part "
                "takes 90 seconds: a roughing cut with high spindle power and axis load, a finishing pass, then a "
                "short rapid move and part change with the spindle near idle. Spindle speed steps up for the "
                "finishing pass; vibration is highest while roughing; the coolant warms slowly over the shift. The "
                "machine's maintenance and quality notes mention: a cutting tool wearing out, the spindle drawing more "
                "and more power over its last few minutes; chatter on the finishing pass; the operator leaving the "
                "feed override turned down so parts took longer; the spindle encoder now and then sending a wrong "
                "reading; feed holds when the door interlock tripped, the machine waiting with the spindle at idle "
                "load; and a sticky axis slide that hesitated within a cycle and then caught up."
            ),
            freq="1s",
            start="2024-03-04 06:00",
            length=14400,
            factors=[Factor(name="cycle", seasonal=[Seasonality(period_s=90, amplitude=1.0, phase=0.4, shape="pulse", width=0.2),
                                                    Seasonality(period_s=90, amplitude=0.3, phase=0.1)], ar=0.5, noise=0.03)],
            channels=[
                Channel(name="spindle_power_kw", unit="kW", description="spindle motor power", base=2.5,
                        loadings={"cycle": 6}, noise=0.15, ar=0.3, floor=0),
                Channel(name="spindle_speed_rpm", unit="rpm", description="spindle speed from the encoder", base=8000,
                        seasonal=[Seasonality(period_s=90, amplitude=1500, phase=0.8, shape="pulse", width=0.1)],
                        noise=15, ar=0.3, floor=0),
                Channel(name="axis_load_pct", unit="%", description="X-axis servo load", base=12,
                        loadings={"cycle": 30}, noise=1.0, ar=0.4, floor=0, ceiling=100),
                Channel(name="vibration_g", unit="g", description="spindle housing vibration (RMS)", base=0.15,
                        loadings={"cycle": 0.25}, noise=0.02, ar=0.2, floor=0),
                Channel(name="coolant_temp_c", unit="°C", description="coolant tank temperature", base=22,
                        trend_per_day=12, loadings={"cycle": 0.5}, lag_steps=300, noise=0.05, ar=0.95),
            ],
            bank="scenario_cnc_machine",
            n_events=12,
        ),
        ScenarioSpec(
            name="solar_pv",
            title="Solar PV plant: irradiance, module temperature, DC and AC power, inverter temperature",
            description=(
                "A 700 kWp ground-mounted solar plant with one central inverter, sampled every 5 minutes; the "
                "timestamps are the site's local solar time. Irradiance, DC and AC power rise from zero at dawn to a "
                "midday peak and are zero all night, which is normal; clouds make them uneven, and on overcast days "
                "the whole curve is lower. On clear days AC power levels off at the inverter's 650 kW rating around "
                "noon, which is expected. Module and inverter temperatures follow the sun with some delay. The O&M "
                "log mentions: the inverter tripping on grid faults in the middle of the day and exporting nothing "
                "until it reconnected; the weather station's clock slipping by hours after a firmware update, so its "
                "irradiance no longer matched the time of day; a failed inverter cooling fan; the single-axis tracker "
                "stalling so that the morning and afternoon looked lopsided; and a loose back-of-module temperature "
                "sensor."
            ),
            freq="5min",
            length=8640,
            factors=[
                Factor(name="sun", seasonal=[Seasonality(period_s=_DAY, amplitude=1.0, phase=0.5, shape="pulse", width=0.15)],
                       ar=0.0, noise=0.0),
                Factor(name="clouds", ar=0.9, noise=0.15),
            ],
            channels=[
                Channel(name="irradiance_w_m2", unit="W/m²", description="plane-of-array irradiance (pyranometer)", base=-200,
                        loadings={"sun": 1150, "clouds": 250}, regime_offsets=[0, -350], regime_noise=[1.0, 1.8],
                        noise=15, ar=0.5, floor=0),
                Channel(name="module_temp_c", unit="°C", description="back-of-module temperature", base=12,
                        loadings={"sun": 30, "clouds": 5}, regime_offsets=[0, -8], lag_steps=6, noise=0.4, ar=0.7),
                Channel(name="dc_power_kw", unit="kW", description="DC power into the inverter", base=-160,
                        loadings={"sun": 920, "clouds": 200}, regime_offsets=[0, -280], regime_noise=[1.0, 1.8],
                        noise=10, ar=0.5, floor=0),
                Channel(name="ac_power_kw", unit="kW", description="AC power exported", base=-155,
                        loadings={"sun": 895, "clouds": 195}, regime_offsets=[0, -272], regime_noise=[1.0, 1.8],
                        noise=10, ar=0.5, floor=0, ceiling=650),
                Channel(name="inverter_temp_c", unit="°C", description="inverter heat-sink temperature", base=18,
                        loadings={"sun": 22}, regime_offsets=[0, -6], lag_steps=4, noise=0.4, ar=0.7),
            ],
            regimes=Regimes(names=["clear", "overcast"], mean_dwell_steps=576, min_dwell_steps=144),
            bank="scenario_solar_pv",
            n_events=10,
        ),
        ScenarioSpec(
            name="icu_monitor",
            title="ICU bedside monitor: heart rate, SpO2, respiration rate, mean arterial pressure",
            description=(
                "The bedside monitor of an adult patient in intensive care, stored as one averaged reading per minute: "
                "heart rate, oxygen saturation from a finger probe, respiration rate, and mean arterial pressure from "
                "an arterial line. The patient is stable; heart rate, breathing and pressure are higher while awake "
                "and during care in the day than at night, and saturation stays around 95-97 %. The nursing notes "
                "and the unit's alarm review mention: the finger probe slipping off or being taken off for washing, "
                "when the monitor records zero; short spells of a few minutes in which saturation sagged a few points "
                "and came back, mostly when the patient lay flat; the pressure transducer left at the wrong height "
                "after repositioning, so pressure read high until a nurse re-zeroed it; bouts of atrial fibrillation; "
                "and the start of sepsis, with heart rate and breathing creeping up over an hour or two."
            ),
            freq="1min",
            length=5760,
            factors=[Factor(name="arousal", seasonal=[Seasonality(period_s=_DAY, amplitude=1.0, phase=0.3)], ar=0.97, noise=0.3)],
            channels=[
                Channel(name="heart_rate_bpm", unit="1/min", description="heart rate from the ECG", base=82,
                        loadings={"arousal": 7}, noise=2, ar=0.7, floor=30),
                Channel(name="spo2_pct", unit="%", description="peripheral oxygen saturation (pulse oximeter)", base=96,
                        loadings={"arousal": -0.3}, noise=0.6, ar=0.6, ceiling=100),
                Channel(name="resp_rate_bpm", unit="1/min", description="respiration rate", base=17,
                        loadings={"arousal": 2}, noise=1.0, ar=0.5, floor=4),
                Channel(name="map_mmhg", unit="mmHg", description="mean arterial pressure (arterial line)", base=80,
                        loadings={"arousal": 5}, noise=2, ar=0.7, floor=30),
            ],
            bank="scenario_icu_monitor",
            n_events=10,
        ),
        ScenarioSpec(
            name="road_traffic",
            title="Motorway loop detector: vehicle count, mean speed, occupancy, heavy-vehicle share",
            description=(
                "A double inductive-loop detector on one carriageway of a suburban motorway, reporting every 5 "
                "minutes: vehicles counted, their mean speed, occupancy (the share of time a vehicle is over the "
                "loop) and the share of heavy vehicles. Weekdays have a sharp morning rush around 07:45 and a broader "
                "evening one around 17:15 (UTC, the local time here), when speed drops and occupancy climbs; weekends "
                "are lighter and have no rush. Lorries make up a larger share of the traffic at night. The traffic "
                "control centre's log mentions: crashes that blocked a lane, when fewer vehicles got through while "
                "the loop was occupied more; crowds leaving a late concert at the arena next to the junction; the "
                "central system filling a communication outage with a copy of data from another day; the loops "
                "re-cut after resurfacing with their sensitivity set wrong, so occupancy swung far more than it "
                "should; and the upstream junction running an old signal plan after a power cut, holding the morning "
                "traffic back and then letting it through in a rush."
            ),
            freq="5min",
            length=8064,
            factors=[
                Factor(name="demand", seasonal=[
                    Seasonality(period_s=_DAY, amplitude=0.6, phase=0.3),
                    Seasonality(period_s=_DAY, amplitude=0.9, phase=7.75 / 24, shape="pulse", width=0.04, weekdays_only=True),
                    Seasonality(period_s=_DAY, amplitude=0.7, phase=17.25 / 24, shape="pulse", width=0.06, weekdays_only=True),
                ], ar=0.9, noise=0.08),
                Factor(name="congestion", seasonal=[
                    Seasonality(period_s=_DAY, amplitude=1.0, phase=7.9 / 24, shape="pulse", width=0.025, weekdays_only=True),
                    Seasonality(period_s=_DAY, amplitude=0.7, phase=17.4 / 24, shape="pulse", width=0.035, weekdays_only=True),
                ], ar=0.8, noise=0.05),
            ],
            channels=[
                Channel(name="vehicle_count", unit="vehicles/5 min", description="vehicles counted in 5 minutes", base=190,
                        loadings={"demand": 130}, noise=12, ar=0.3, floor=0),
                Channel(name="mean_speed_kmh", unit="km/h", description="mean speed of the vehicles counted", base=92,
                        loadings={"congestion": -38}, noise=2.5, ar=0.5, floor=5, ceiling=130),
                Channel(name="occupancy_pct", unit="%", description="share of time the loop is occupied", base=6,
                        loadings={"demand": 3, "congestion": 14}, noise=0.8, ar=0.4, floor=0, ceiling=100),
                Channel(name="heavy_vehicle_pct", unit="%", description="share of vehicles longer than 7.5 m", base=11,
                        seasonal=[Seasonality(period_s=_DAY, amplitude=3, phase=0.8)], noise=1.0, ar=0.3, floor=0),
            ],
            bank="scenario_road_traffic",
            n_events=12,
        ),
        ScenarioSpec(
            name="water_district",
            title="Water distribution district: inflow, pressure, service reservoir level, chlorine residual",
            description=(
                "A district metered area of a town's water network, logged hourly by a telemetry outstation: the "
                "flow into the district, the pressure at its critical point, the level of the service reservoir that "
                "feeds it, and the chlorine residual at the inlet. Demand has a morning peak around 07:30 and a "
                "smaller evening one around 19:00 and is lowest between 02:00 and 04:00, when the inflow is mostly "
                "background leakage; pressure falls as demand rises, and the reservoir draws down over the day and "
                "refills at night. The network team's log mentions: a burst main, the inflow up until the crew "
                "isolated it; the reservoir's level float jamming; a pressure-reducing valve hunting, so pressure "
                "swung much more than usual; air in the chlorine analyser's sample line, making its reading jump "
                "about; and tankers filled illegally from a hydrant in the middle of the night. Hydrant flushing by "
                "the maintenance crew is planned and announced."
            ),
            freq="1h",
            length=2688,
            factors=[Factor(name="demand", seasonal=[
                Seasonality(period_s=_DAY, amplitude=1.0, phase=7.5 / 24, shape="pulse", width=0.08),
                Seasonality(period_s=_DAY, amplitude=0.7, phase=19 / 24, shape="pulse", width=0.09),
                Seasonality(period_s=_WEEK, amplitude=0.1, phase=0.2),
            ], ar=0.8, noise=0.06)],
            channels=[
                Channel(name="inflow_l_s", unit="l/s", description="flow into the district", base=22,
                        loadings={"demand": 30}, noise=1.2, ar=0.5, floor=0),
                Channel(name="pressure_bar", unit="bar", description="pressure at the district's critical point", base=4.2,
                        loadings={"demand": -0.6}, noise=0.04, ar=0.6, floor=0),
                Channel(name="reservoir_level_m", unit="m", description="service reservoir water level", base=3.8,
                        loadings={"demand": -1.2}, lag_steps=4, noise=0.03, ar=0.9, floor=0, ceiling=5.5),
                Channel(name="chlorine_mg_l", unit="mg/l", description="free chlorine residual at the inlet", base=0.45,
                        loadings={"demand": -0.03}, noise=0.015, ar=0.8, floor=0),
            ],
            bank="scenario_water_district",
            n_events=10,
        ),
        ScenarioSpec(
            name="cold_store",
            title="Refrigerated warehouse: room and evaporator temperature, compressor power, door openings",
            description=(
                "A frozen-food cold store kept at about -21 °C, logged every 2 minutes: the room air temperature, "
                "the evaporator coil temperature, the refrigeration compressor's electrical power and the number of "
                "times the loading-dock door opened. The compressor cycles on and off about every 40 minutes; every "
                "six hours a defrost warms the coil for a quarter of an hour while the compressor rests. Doors open "
                "mostly during the weekday day shift, which warms the room slightly and makes the compressor work "
                "harder. The facility's incident notes mention: the compressor switching on and off far too often "
                "after a refrigerant leak; a dock door left ajar, the room warming until somebody closed it; the data "
                "logger, after a reboot, re-sending a block of readings it had already sent, stored under new "
                "timestamps; the door sensor's contact bouncing and counting one opening many times; and the defrost "
                "heater's contactor sticking, keeping the coil warm."
            ),
            freq="2min",
            length=7200,
            factors=[
                Factor(name="activity", seasonal=[Seasonality(period_s=_DAY, amplitude=1.0, phase=0.5, shape="pulse", width=0.15,
                                                              weekdays_only=True)], ar=0.8, noise=0.1),
                Factor(name="defrost", seasonal=[Seasonality(period_s=21600, amplitude=1.0, phase=0.05, shape="pulse", width=0.025)],
                       ar=0.0, noise=0.0),
            ],
            channels=[
                Channel(name="room_temp_c", unit="°C", description="room air temperature", base=-21,
                        seasonal=[Seasonality(period_s=2400, amplitude=0.3, phase=0.5)],
                        loadings={"activity": 1.2, "defrost": 1.5}, lag_steps=2, noise=0.1, ar=0.8),
                Channel(name="evaporator_temp_c", unit="°C", description="evaporator coil temperature", base=-28,
                        seasonal=[Seasonality(period_s=2400, amplitude=1.0, phase=0.25)],
                        loadings={"defrost": 20}, noise=0.2, ar=0.6),
                Channel(name="compressor_power_kw", unit="kW", description="compressor electrical power", base=12,
                        seasonal=[Seasonality(period_s=2400, amplitude=7, phase=0.3, shape="pulse", width=0.2)],
                        loadings={"activity": 4, "defrost": -12}, noise=0.4, ar=0.4, floor=0),
                Channel(name="door_openings", unit="openings/2 min", description="dock door openings in the interval",
                        base=0.3, loadings={"activity": 3}, noise=0.6, ar=0.1, floor=0),
            ],
            bank="scenario_cold_store",
            n_events=12,
        ),
    )
}


def scenario_names() -> list[str]:
    return list(SCENARIOS)


def get_scenario(name: str) -> ScenarioSpec:
    try:
        return SCENARIOS[name]
    except KeyError:
        raise ConfigError(f"unknown scenario '{name}'; TimeAnomalyBench has: {', '.join(SCENARIOS)}") from None


# ------------------------------------------------------------------------ split
# The committed tune/validate split. Prompts, miner settings and bank-scoring choices may be
# tuned on the "tune" fold (the three original scenarios and three of the new ones); figures are
# reported on the "validate" fold, whose six scenarios span IT, industry, energy, medicine,
# traffic and utilities. The split was fixed when the scenarios were written, before any miner
# was measured on the validate fold, and must not be changed to improve a figure: moving a
# scenario between folds (or editing a validate scenario's text or hidden bank after seeing
# scores on it) makes the validate figures optimistic. Add new scenarios to a fold instead.
SPLITS: dict[str, tuple[str, ...]] = {
    "tune": ("web_server", "pump", "building_energy", "queue_consumer", "wind_turbine", "cold_store"),
    "validate": ("db_server", "cnc_machine", "solar_pv", "icu_monitor", "road_traffic", "water_district"),
}

Split = Literal["tune", "validate", "all"]


def scenarios_in(split: Split) -> list[str]:
    """The scenarios of one fold of :data:`SPLITS` (``all``: every scenario), in ``SCENARIOS`` order."""
    if split == "all":
        return list(SCENARIOS)
    if split not in SPLITS:
        raise ConfigError(f"unknown split {split!r}; TimeAnomalyBench has: tune, validate, all")
    members = set(SPLITS[split])
    return [name for name in SCENARIOS if name in members]


def split_of(name: str) -> Literal["tune", "validate"]:
    """The fold a scenario belongs to."""
    get_scenario(name)
    return "tune" if name in SPLITS["tune"] else "validate"


# --------------------------------------------------------------------- generation
def _ar_noise(rng: np.random.Generator, n: int, ar: float, std: float) -> np.ndarray:
    """AR(1) noise with stationary standard deviation ``std``."""
    if std == 0:
        return np.zeros(n)
    shocks = rng.standard_normal(n) * std * np.sqrt(1 - ar * ar)
    return lfilter([1.0], [1.0, -ar], shocks)


def _regime_path(rng: np.random.Generator, spec: Regimes | None, n: int) -> np.ndarray:
    path = np.zeros(n, dtype=np.int64)
    if spec is None:
        return path
    k = len(spec.names)
    at, current = 0, int(rng.integers(k))
    while at < n:
        extra = max(spec.mean_dwell_steps - spec.min_dwell_steps, 0)
        dwell = spec.min_dwell_steps + int(rng.exponential(extra)) if extra else spec.min_dwell_steps
        path[at : at + dwell] = current
        at += dwell
        current = (current + 1 + int(rng.integers(k - 1))) % k
    return path


def clean_series(spec: ScenarioSpec, rng: np.random.Generator) -> tuple[np.ndarray, pd.DatetimeIndex, np.ndarray]:
    """Values ``[T, D]`` before any anomaly, their timestamps, and the regime of each step."""
    n = spec.length
    stamps = pd.date_range(pd.Timestamp(spec.start, tz="UTC"), periods=n, freq=spec.freq).as_unit("ns")
    seconds = stamps.asi8.astype(np.float64) / 1e9
    weekday = stamps.day_of_week.to_numpy()
    regimes = _regime_path(rng, spec.regimes, n)
    factors = {}
    for f in spec.factors:
        cycle = sum((s.values(seconds, weekday) for s in f.seasonal), np.zeros(n))
        factors[f.name] = cycle + _ar_noise(rng, n, f.ar, f.noise)
    days = (seconds - seconds[0]) / _DAY
    cols = []
    for ch in spec.channels:
        signal = ch.base + ch.trend_per_day * days
        signal = signal + sum((s.values(seconds, weekday) for s in ch.seasonal), np.zeros(n))
        signal = signal + sum((w * factors[name] for name, w in ch.loadings.items()), np.zeros(n))
        if ch.regime_offsets:
            signal = signal + np.asarray(ch.regime_offsets)[regimes]
        if ch.lag_steps:
            alpha = 1.0 / (ch.lag_steps + 1)
            signal = lfilter([alpha], [1.0, alpha - 1.0], signal, zi=[signal[0] * (1 - alpha)])[0]
        noise = _ar_noise(rng, n, ch.ar, ch.noise)
        if ch.regime_noise:
            noise = noise * np.asarray(ch.regime_noise)[regimes]
        values = signal + noise
        if ch.floor is not None or ch.ceiling is not None:
            values = np.clip(values, ch.floor, ch.ceiling)
        cols.append(values)
    return np.stack(cols, axis=1).astype(np.float32), stamps, regimes


MAX_TRIES = 40  # placements tried per anomaly before the largest one is kept


def _allocate(total: int, probabilities: np.ndarray) -> list[int]:
    """Rule index per event: one of each rule first, the rest in proportion to the weights."""
    k = len(probabilities)
    if total < k:
        raise ConfigError(f"{total} anomalies cannot cover the {k} rules of the hidden bank")
    share = probabilities * (total - k)
    counts = np.floor(share).astype(int) + 1
    order = np.argsort(-(share - np.floor(share)), kind="stable")
    counts[order[: total - counts.sum()]] += 1
    return [r for r, c in enumerate(counts) for _ in range(c)]


def _free_origins(occupied: np.ndarray, lo: int, hi: int, window: int) -> np.ndarray:
    """Window starts in ``[lo, hi - window]`` whose window holds no occupied (anomalous) step."""
    csum = np.concatenate(([0], np.cumsum(occupied, dtype=np.int64)))
    origins = np.arange(lo, hi - window + 1)
    if len(origins) == 0:
        return origins
    return origins[(csum[origins + window] - csum[origins]) == 0]


def generate(name: str | ScenarioSpec, seed: int = 0, *, length: int | None = None) -> BenchSeries:
    """Generate one scenario: clean series, then ``n_events`` anomalies from its hidden bank in the test part."""
    from anomalygraph.rulebank.context import regime_filter
    from anomalygraph.rulebank.sampler import PAGSampler
    from anomalygraph.rulebank.store import load_bank

    spec = get_scenario(name) if isinstance(name, str) else name
    if length is not None:
        spec = spec.model_copy(update={"length": length})
        spec = ScenarioSpec.model_validate(spec.model_dump())
    rng = np.random.default_rng(seed)
    clean, stamps, _ = clean_series(spec, rng)
    channels = [c.name for c in spec.channels]
    n, _ = clean.shape
    train_end = round(n * spec.train_fraction)
    base = TimeSeries(values=clean, timestamps=stamps, channels=channels, name=spec.name, train_end=train_end)
    bank = load_bank(spec.bank)
    # The sampler resolves each rule against the series (named channels, phases, periods, units)
    # and owns the random stream; the windows here are sized per anomaly instead of fixed.
    sampler = PAGSampler(bank, base, window=min(100, train_end), seed=seed)
    values = clean.copy()
    labels = np.zeros(n, dtype=np.uint8)
    morphology = np.full(n, "", dtype=object)
    rule_ids = np.full(n, "", dtype=object)
    occupied = np.zeros(n, dtype=bool)
    events: list[AnomalyEvent] = []
    test_len = n - train_end
    max_steps = max(test_len // (2 * spec.n_events), 8)
    # Every rule of the hidden bank appears; the rest follow the weights (largest remainder).
    # Long anomalies are placed first so that short ones fill the gaps.
    plan = _allocate(spec.n_events, sampler.probabilities)
    todo = [(r, int(sampler.lengths(sampler.prepared[r], 1, max_steps=max_steps)[0])) for r in plan]
    todo.sort(key=lambda item: -item[1])
    for r, length_steps in todo:
        prep = sampler.prepared[r]
        window = max(64, 4 * length_steps)
        if prep.period is not None or prep.phase is not None:  # room for a whole cycle
            cycle = prep.period or sampler.period_steps(prep.rule, prep.main_channel)
            window = max(window, int(1.2 * cycle) + length_steps)
        window = int(min(window, test_len))
        best = None
        for _ in range(MAX_TRIES):
            origins = _free_origins(labels.astype(bool), train_end, n, window)
            origins = origins[regime_filter(values, origins, window, prep.main_channel, prep.rule.where)] if len(origins) else origins
            if len(origins) == 0:
                break
            origin = int(origins[sampler.rng.integers(len(origins))])
            x = values[origin : origin + window][None]
            donor = None
            if prep.spec.uses_donor:
                d0 = int(sampler.rng.integers(0, max(train_end - window, 0) + 1))
                donor = values[d0 : d0 + window][None]
            drawn = sampler.apply_rule(prep, x, np.array([origin]), np.array([length_steps]), donor=donor)
            if occupied[origin : origin + window][drawn[1][0]].any():
                continue  # too close to an earlier anomaly
            if best is None or drawn[3][0] > best[1][3][0]:
                best = (origin, drawn)
            if drawn[3][0] >= spec.min_effect:
                break
        if best is None:
            raise DataError(f"scenario '{spec.name}': no room left for rule '{prep.rule.id}' "
                            f"({length_steps} steps); lengthen the series or lower n_events")
        origin, (x_pa, mask, touched, effect, params) = best
        seg = np.flatnonzero(mask[0])
        start, end = origin + int(seg[0]), origin + int(seg[-1])
        values[origin : origin + x_pa.shape[1]] = x_pa[0]
        labels[start : end + 1] = 1
        morphology[start : end + 1] = prep.rule.morphology
        rule_ids[start : end + 1] = prep.rule.id
        occupied[max(start - spec.min_gap_steps, 0) : end + spec.min_gap_steps + 1] = True
        events.append(AnomalyEvent(
            start=start, end=end, start_time=str(stamps[start]), rule_id=prep.rule.id, operator=prep.rule.operator,
            morphology=str(prep.rule.morphology), channels=[channels[i] for i in np.flatnonzero(touched[0])],
            params={k: (str(v[0]) if v.dtype.kind in "US" else round(float(v[0]), 6)) for k, v in params.items()},
            effect=round(float(effect[0]), 4),
        ))
    events.sort(key=lambda e: e.start)
    series = TimeSeries(values=values, timestamps=stamps, labels=labels, channels=channels, name=spec.name,
                        train_end=train_end, meta={"scenario": spec.name, "seed": seed, "generator": GENERATOR_VERSION})
    return BenchSeries(spec, series, clean, morphology.astype(str), rule_ids.astype(str), events, seed)


# -------------------------------------------------------------------------- files
def _domain_text(spec: ScenarioSpec, bench: BenchSeries) -> str:
    rows = "\n".join(f"| `{c.name}` | {c.unit} | {c.description} |" for c in spec.channels)
    s = bench.series
    assert s.timestamps is not None and s.train_end is not None
    return (
        f"# {spec.title}\n\n{spec.description}\n\n"
        f"- Sampling: every {spec.freq}, {s.length} steps from {s.timestamps[0]} to {s.timestamps[-1]}.\n"
        f"- The first {s.train_end} steps (to {s.timestamps[s.train_end - 1]}) are normal operation (training part).\n\n"
        f"| channel | unit | what it measures |\n| --- | --- | --- |\n{rows}\n"
    )


def write_bench(bench: BenchSeries, out_dir: str | Path) -> Path:
    """Write the scenario folder ``out_dir/<name>``; returns it."""
    from anomalygraph.rulebank.store import load_bank, save_bank

    spec, s = bench.spec, bench.series
    folder = Path(out_dir) / spec.name
    (folder / "hidden").mkdir(parents=True, exist_ok=True)
    assert s.timestamps is not None and s.labels is not None
    frame = pd.DataFrame(s.values, columns=s.channels)
    frame.insert(0, "timestamp", s.timestamps.strftime("%Y-%m-%dT%H:%M:%SZ"))
    frame["label"] = s.labels
    frame.to_csv(folder / "series.csv", index=False, float_format="%.6g")
    pd.DataFrame({"timestamp": frame["timestamp"], "label": s.labels, "morphology": bench.morphology,
                  "rule_id": bench.rule_ids}).to_csv(folder / "labels.csv", index=False)
    (folder / "events.json").write_text(json.dumps([e.model_dump() for e in bench.events], indent=2, ensure_ascii=False))
    (folder / "domain.md").write_text(_domain_text(spec, bench), encoding="utf-8")
    counts: dict[str, int] = {}
    for e in bench.events:
        counts[e.morphology] = counts.get(e.morphology, 0) + 1
    meta = {
        "generator": GENERATOR_VERSION, "scenario": spec.name, "seed": bench.seed, "length": s.length,
        "freq": spec.freq, "train_end": s.train_end, "channels": s.channels, "n_events": len(bench.events),
        "anomalous_steps": int(s.labels.sum()), "events_by_morphology": counts, "hidden_bank": spec.bank,
        "spec": spec.model_dump(mode="json"),
    }
    (folder / "meta.json").write_text(json.dumps(meta, indent=2, ensure_ascii=False), encoding="utf-8")
    save_bank(load_bank(spec.bank), folder / "hidden" / "bank.yaml")
    return folder


def read_bench(folder: str | Path) -> tuple[TimeSeries, list[AnomalyEvent]]:
    """The series (with labels and train split) and events of a folder written by :func:`write_bench`."""
    from anomalygraph.data.loaders import load_series

    folder = Path(folder)
    meta_path = folder / "meta.json"
    if not meta_path.is_file():
        raise DataError(f"{folder}: not a TimeAnomalyBench folder (no meta.json)")
    meta = json.loads(meta_path.read_text(encoding="utf-8"))
    series = load_series(folder / "series.csv", format="csv")
    series.train_end = int(meta["train_end"])
    series.name = meta["scenario"]
    events = [AnomalyEvent.model_validate(e) for e in json.loads((folder / "events.json").read_text(encoding="utf-8"))]
    return series, events


__all__ = [
    "SCENARIOS",
    "SPLITS",
    "AnomalyEvent",
    "BenchSeries",
    "ScenarioSpec",
    "generate",
    "get_scenario",
    "read_bench",
    "scenario_names",
    "scenarios_in",
    "split_of",
    "write_bench",
]
