"""Water losses: DMA zone balances, minimum night flow, balance-based loss events, the IWA/AWWA
water balance and ILI. Pure functions on DataFrames (no Dagster, no database)."""
