"""The deployment's splat budget for the web files (`GAMEVIEW_WEB_MAX_SPLATS`)."""

import dagster as dg


class WebBudgetResource(dg.ConfigurableResource):
    """At most how many splats `scene.spz` and `scene.compressed.ply` hold in this deployment
    (phones must render them); 0 leaves each preset's own `web_max_splats`."""

    max_splats: int = 0

    def splats_for(self, preset_max_splats: int, run_max_splats: int = 0) -> int:
        """The budget of one run: the launchpad's choice, else this deployment's, else the
        preset's."""
        return run_max_splats or self.max_splats or preset_max_splats
