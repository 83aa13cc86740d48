# boot.py - runs before main.py on every reset.  MIT license.
# Kept minimal on purpose: it must always return, imports nothing of the app, and the
# reset cause / safe-mode decisions are made by the gateway (gw/app.py) from the HAL.
import gc

gc.collect()
