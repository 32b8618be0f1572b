"""HJ 633-2012 AQI: every breakpoint of table 1, its special rules, levels; GB 3095 validity."""

from __future__ import annotations

import pytest

from hazwatch.streams.air import aqi

TABLES = sorted(aqi.BREAKPOINTS)


@pytest.mark.parametrize("table", TABLES)
def test_every_breakpoint_gives_its_iaqi(table: str) -> None:
    for index, concentration in enumerate(aqi.BREAKPOINTS[table]):
        assert aqi.iaqi(table, concentration) == aqi.IAQI_STEPS[index], (table, concentration)


@pytest.mark.parametrize("table", TABLES)
def test_just_above_a_breakpoint_rounds_up_to_the_next_integer(table: str) -> None:
    points = aqi.BREAKPOINTS[table]
    for index in range(len(points) - 1):
        step = (points[index + 1] - points[index]) / (
            aqi.IAQI_STEPS[index + 1] - aqi.IAQI_STEPS[index]
        )
        # half an IAQI unit above the breakpoint: HJ 633 rounds every fraction up
        assert aqi.iaqi(table, points[index] + step / 2) == aqi.IAQI_STEPS[index] + 1
        # and half a unit below the next one still rounds up to it
        below = points[index + 1] - step / 2
        assert aqi.iaqi(table, below) == aqi.IAQI_STEPS[index + 1]


def test_table_1_values() -> None:
    # HJ 633-2012 table 1, spot checks of the published limits (µg/m³; CO mg/m³)
    assert aqi.BREAKPOINTS["pm25_24h"] == (0, 35, 75, 115, 150, 250, 350, 500)
    assert aqi.BREAKPOINTS["pm10_24h"] == (0, 50, 150, 250, 350, 420, 500, 600)
    assert aqi.BREAKPOINTS["so2_1h"] == (0, 150, 500, 650, 800)
    assert aqi.BREAKPOINTS["o3_8h"] == (0, 100, 160, 215, 265, 800)
    assert aqi.BREAKPOINTS["co_1h"] == (0, 5, 10, 35, 60, 90, 120, 150)


@pytest.mark.parametrize(
    ("table", "concentration", "expected"),
    [
        # formula 1 by hand: (150-100)/(115-75)*(80-75)+100 = 106.25 → 107
        ("pm25_24h", 80, 107),
        # (100-50)/(150-50)*(120-50)+50 = 85
        ("pm10_24h", 120, 85),
        # (200-150)/(800-650)*(700-650)+150 = 166.67 → 167
        ("so2_1h", 700, 167),
        # (150-100)/(215-160)*(180-160)+100 = 118.18 → 119
        ("o3_8h", 180, 119),
        # (100-50)/(10-5)*(7.5-5)+50 = 75
        ("co_1h", 7.5, 75),
        ("no2_1h", 0, 0),
        # above the top of a full table: 500
        ("pm25_24h", 700, 500),
    ],
)
def test_worked_examples(table: str, concentration: float, expected: int) -> None:
    assert aqi.iaqi(table, concentration) == expected


def test_tables_that_end_early_give_none_beyond_their_end() -> None:
    assert aqi.iaqi("so2_1h", 800.1) is None
    assert aqi.iaqi("o3_8h", 801) is None


def test_so2_above_800_is_rated_by_its_24h_mean() -> None:
    result = aqi.hourly_aqi({"so2": 900}, so2_24h=200)
    # (150-100)/(475-150)*(200-150)+100 = 107.7 → 108
    assert result.iaqi == {"so2": 108}
    assert aqi.hourly_aqi({"so2": 900}).iaqi == {}  # no 24-h mean known: not rated


def test_o3_8h_above_800_leaves_o3_to_its_1h_mean() -> None:
    result = aqi.hourly_aqi({"o3": 900}, o3_8h=850)
    # o3_1h: 800 → 300, 1000 → 400: (400-300)/(1000-800)*(900-800)+300 = 350
    assert result.iaqi == {"o3": 350}
    assert result.aqi == 350 and result.primary == ("o3",)
    with_8h = aqi.hourly_aqi({"o3": 150}, o3_8h=180)
    assert with_8h.iaqi == {"o3": 47, "o3_8h": 119}
    assert with_8h.primary == ("o3_8h",)


def test_hourly_aqi_rates_pm_1h_means_against_24h_table() -> None:
    result = aqi.hourly_aqi({"pm25": 80, "pm10": 120, "no2": 50, "co": 0.5, "so2": 10})
    assert result.iaqi == {"pm25": 107, "pm10": 85, "no2": 25, "co": 5, "so2": 4}
    assert result.aqi == 107
    assert result.primary == ("pm25",)
    assert result.exceeding == ("pm25",)
    assert result.level is not None and result.level.number == 3
    assert result.level.category_zh == "轻度污染"


def test_no_primary_pollutant_when_aqi_is_50_or_less_and_ties_name_all() -> None:
    assert aqi.hourly_aqi({"pm25": 35, "pm10": 50}).primary == ()
    tie = aqi.hourly_aqi({"pm25": 75, "pm10": 150})
    assert tie.aqi == 100 and tie.primary == ("pm10", "pm25")


def test_daily_aqi() -> None:
    result = aqi.daily_aqi(
        {"so2": 20, "no2": 60, "pm10": 180, "co": 1.2, "pm25": 130}, o3_1h_max=210, o3_8h_max=150
    )
    # pm25: (200-150)/(150-115)*(130-115)+150 = 171.4 → 172; pm10: 50/100*30+100 = 115
    assert result.iaqi["pm25"] == 172 and result.iaqi["pm10"] == 115
    assert result.aqi == 172 and result.primary == ("pm25",)
    assert result.level is not None and result.level.category_en == "moderately polluted"


@pytest.mark.parametrize(
    ("value", "number", "zh"),
    [
        (0, 1, "优"),
        (50, 1, "优"),
        (51, 2, "良"),
        (100, 2, "良"),
        (101, 3, "轻度污染"),
        (150, 3, "轻度污染"),
        (151, 4, "中度污染"),
        (200, 4, "中度污染"),
        (201, 5, "重度污染"),
        (300, 5, "重度污染"),
        (301, 6, "严重污染"),
        (500, 6, "严重污染"),
    ],
)
def test_levels(value: int, number: int, zh: str) -> None:
    level = aqi.level_of(value)
    assert (level.number, level.category_zh) == (number, zh)


def test_validity_rules() -> None:
    hours: list[float | None] = [10.0] * 19 + [None] * 5
    assert aqi.mean_24h(hours) is None
    assert aqi.mean_24h([10.0] * 20 + [None] * 4) == 10.0
    assert aqi.o3_8h_moving([100.0] * 5 + [None] * 3) is None
    assert aqi.o3_8h_moving([None] * 2 + [100.0, 110.0, 120.0, 130.0, 140.0, 150.0]) == 125.0
    assert aqi.MIN_MINUTES_PER_HOUR == 45


def test_exceedances_against_gb3095_class_ii() -> None:
    over = aqi.exceedances({"pm25_24h": 76, "no2_1h": 200, "o3_8h": 161})
    assert over == {"pm25_24h": (76, 75), "o3_8h": (161, 160)}


def test_negative_concentration_is_an_error() -> None:
    with pytest.raises(ValueError):
        aqi.iaqi("pm25_24h", -1)
