"""One dynamic partition per production; the key is the production id."""

import dagster as dg

productions = dg.DynamicPartitionsDefinition(name="productions")
