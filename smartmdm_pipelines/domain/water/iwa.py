"""The IWA / AWWA M36 water balance of a zone (or the system) over a date range, and the ILI.

    System input volume (SIV)
    ├─ Authorized consumption = billed metered + billed unmetered + unbilled metered + unbilled unmetered
    └─ Water losses = SIV - authorized
        ├─ Apparent losses = unauthorized + customer meter inaccuracy + systematic data handling errors
        └─ Real losses (CARL) = water losses - apparent losses
    NRW = SIV - billed authorized = unbilled authorized + apparent + real losses

Customer meter inaccuracy follows the AWWA Free Water Audit form: (BMC + UMC) x p / (1 - p) for an
under-registration p (registered = true x (1 - p)). Unauthorized consumption and unbilled
unmetered use are shares of SIV (FWAS defaults 0.25 % and 1.25 %) unless configured.
Systematic data handling errors = the volume by which estimates were later restated by actual
reads (measured in the store). Real losses are the residual (top-down audit).

UARL (litres/day) = (18 x Lm + 0.8 x Nc + 25 x Lp) x P (Lambert 1999; Lm mains km, Nc service
connections, Lp private pipe km between property line and meters, P average pressure in m).
ILI = CARL per day / UARL.
"""

from __future__ import annotations

from smartmdm_pipelines.domain.water.params import ZoneParams, litres_per

UARL_MAINS_L_PER_KM = 18.0
UARL_CONNECTION_L = 0.8
UARL_PRIVATE_L_PER_KM = 25.0


def uarl_litres_per_day(
    mains_km: float, connections: float, private_pipe_km: float, pressure_m: float
) -> float:
    """Unavoidable annual real losses as litres per day (metric Lambert formula)."""
    return (
        UARL_MAINS_L_PER_KM * mains_km
        + UARL_CONNECTION_L * connections
        + UARL_PRIVATE_L_PER_KM * private_pipe_km
    ) * pressure_m


def water_balance(
    system_input: float,
    billed_metered: float,
    unbilled_metered: float,
    restated: float,
    days: int,
    connections: int,
    unit: str,
    params: ZoneParams,
    billed_unmetered: float = 0.0,
) -> dict:
    """The IWA components (volumes in ``unit``) with NRW %, losses per connection per day and ILI."""
    siv = float(system_input)
    uuc = params.unbilled_unmetered_share * siv
    billed_authorized = billed_metered + billed_unmetered
    unbilled_authorized = unbilled_metered + uuc
    authorized = billed_authorized + unbilled_authorized
    water_losses = siv - authorized
    p = params.meter_under_registration
    meter_inaccuracy = (billed_metered + unbilled_metered) * p / (1.0 - p)
    unauthorized = params.unauthorized_share * siv
    apparent = unauthorized + meter_inaccuracy + restated
    real = water_losses - apparent
    nrw = siv - billed_authorized
    litres = litres_per(unit)
    carl_l_day = real * litres / days if days else None
    uarl = None
    if None not in (params.mains_km, params.private_pipe_km, params.pressure_m):
        uarl = uarl_litres_per_day(params.mains_km, connections, params.private_pipe_km, params.pressure_m)
    per_conn = (lambda v: v * litres / days / connections) if days and connections else (lambda v: None)
    return {
        "unit": unit,
        "days": days,
        "system_input_volume": siv,
        "authorized_consumption": authorized,
        "billed_authorized": billed_authorized,
        "billed_metered": billed_metered,
        "billed_unmetered": billed_unmetered,
        "unbilled_authorized": unbilled_authorized,
        "unbilled_metered": unbilled_metered,
        "unbilled_unmetered": uuc,
        "water_losses": water_losses,
        "apparent_losses": apparent,
        "unauthorized_consumption": unauthorized,
        "customer_metering_inaccuracies": meter_inaccuracy,
        "systematic_data_handling_errors": restated,
        "real_losses": real,
        "non_revenue_water": nrw,
        "nrw_percent": 100.0 * nrw / siv if siv else None,
        "connections": connections,
        "real_losses_l_per_connection_day": per_conn(real),
        "apparent_losses_l_per_connection_day": per_conn(apparent),
        "carl_l_per_day": carl_l_day,
        "uarl_l_per_day": uarl,
        "ili": carl_l_day / uarl if carl_l_day is not None and uarl else None,
    }
