"""What every API endpoint shares: parsers, the error shape, pagination, throttles."""
