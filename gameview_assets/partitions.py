"""One dynamic partition per production; the key is the production id."""

from dagster import DynamicPartitionsDefinition

productions = DynamicPartitionsDefinition(name="productions")
