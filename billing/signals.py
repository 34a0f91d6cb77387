"""What billing announces, each sent once after the transaction that caused it commits.

Listeners (webhooks, mail) run outside billing's transaction: a failing listener
never undoes an alert or a statement.
"""

from django.dispatch import Signal

# alert: the UsageAlert just raised.
alert_raised = Signal()
# alert: the 100 % UsageAlert of a `block` item, raised when usage reached the limit
# (once per item and period, as the alert itself).
entitlement_blocked = Signal()
# statement: the Statement that just became final.
statement_finalized = Signal()
