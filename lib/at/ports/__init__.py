# The port boundary: the only modules that touch machine, network, esp32 or the
# host. Each defines a Board with .uart, .radio, .log, .reset(), .tcpopt().
