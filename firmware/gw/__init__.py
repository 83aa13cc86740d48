# gw - the Passerelle gateway application package (runs from /lib on a board)
# MIT license. Nothing is imported or constructed here: see gw/app.py.
VERSION = "0.1.0"
