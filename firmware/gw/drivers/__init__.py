# gw/drivers - one module per device kind (MIT license)
