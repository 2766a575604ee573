"""The real-time service (``smartmdm serve``): thin HTTP routers, the MQTT subscriber and the
background workers (VEE of pushed deliveries, outbox dispatch) over the services layer."""
