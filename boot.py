# Runs before main.py on the ESP32. Nothing to do here: the AT UART is UART1,
# so the REPL on UART0 stays free for logs and mpremote.
