"""What other systems rely on: the streams and event types (docs/integrators.md), in one place; the
events' fields are in shared/events.py."""

from __future__ import annotations

from shared.bus.streams import StreamSpec
from shared.service import EventSpec

STREAMS: dict[str, StreamSpec] = {
    "intake": StreamSpec("INTAKE", ("intake.>",), description="citizens' reports and their status"),
    "routing": StreamSpec("ROUTING", ("routing.>",), description="tickets and hotspots"),
    # Kept for good: a suggestion lives for years, and its projection is rebuilt from this stream.
    "suggestions": StreamSpec("SUGGESTIONS", ("suggestions.>",), max_age_days=None,
                              description="deputies' suggestions"),
    # Kept for good: the ledger is rebuilt from it.
    "scoring": StreamSpec("SCORING", ("scoring.>",), max_age_days=None, description="points and rankings"),
    # Not `identity.>`: a stream answers every core publish on its subjects with a PubAck, so it
    # would answer (and store) the `identity.codes.resolve` requests meant for the responder.
    "identity": StreamSpec("IDENTITY", ("identity.deputy.>", "identity.station.>", "identity.reconciliation.>"),
                           description="directory and reconciliation"),
}

# Inbound streams that outside systems publish into; the consuming service declares them.
# Records wait here in clear only until identity has stored them (encrypted): a week covers a long
# outage of the feed, and a longer one is recovered by the source sending again (docs/operations.md).
REGISTRY_STREAM = StreamSpec(
    "REGISTRY", ("registry.*.records",), max_age_days=7,
    description="population, social-security and migrant registry records from provincial systems",
)
GRID_STREAM = StreamSpec(
    "GRID", ("grid.*.tickets", "grid.*.events"), max_age_days=90,
    description="tickets to and status from grid platforms on the nats transport",
)

EVENTS: dict[str, tuple[EventSpec, ...]] = {
    "intake": tuple(
        EventSpec(f"intake.report.{name}", text)
        for name, text in (
            ("submitted", "a citizen's report was accepted"),
            ("acknowledged", "the deputy took the report up"),
            ("dispatched", "the report went to a grid platform"),
            ("answered", "the citizen got an answer"),
            ("rated", "the citizen rated the answer"),
            ("overdue", "an acknowledgement or answer deadline passed; escalated to station and congress staff"),
            ("reminder", "an acknowledgement or answer deadline is due today; remind the deputy"),
            ("reminded", "station or congress staff urged the deputy to act on an open report (催办)"),
            ("closed", "the report is closed"),
            ("supported", "a citizen said \"me too\" (我也遇到) on the report: `report_id`, `support_id`, "
                          "`anonymous`, `supporters` (the new count), `region_code`, `at`; never who"),
        )
    ),
    "routing": (
        EventSpec("routing.report.classified", "a report's category and who handles it: a grid platform or the deputy"),
        EventSpec("routing.ticket.created", "a report was sent to a grid platform as a ticket"),
        EventSpec("routing.ticket.updated",
                  "a grid platform changed a ticket's status, or refused the ticket for good (status failed)"),
        EventSpec("routing.hotspot.detected", "many similar reports in one place form a hotspot"),
        EventSpec("routing.hotspot.progressed",
                  "a step in a hotspot's life, for the citizens of `report_ids`: `step` joined (the reports joined "
                  "it; all of them when it is first found), converted (its topic became a key suggestion), "
                  "assigned, replied, followed_up (the suggestion's yearly look-back), solved (the suggestion "
                  "closed solved) or closed (its topic, or the cluster, closed with `note`); with `hotspot_id`, "
                  "`count`, `supporters`, `places`, `keywords` (those at least two reports name), `category`, "
                  "`topic_title`, `suggestion_id`, `suggestion_title`, `outcome` (A, B, C or null), `at`"),
    ),
    "suggestions": (
        *(EventSpec(f"suggestions.suggestion.{name}", text)
          for name, text in (
              ("submitted", "a deputy submitted a suggestion"),
              ("assigned", "congress staff assigned it to handling units"),
              ("extended", "the reply deadline was extended"),
              ("replied", "the lead unit replied"),
              ("evaluated", "the lead deputy evaluated the reply"),
              ("reassigned", "re-assigned after a dissatisfied evaluation"),
              ("overdue", "the reply is late"),
              ("reviewed", "yearly look-back of an unsolved item"),
              ("closed", "the suggestion is closed"),
              # Not in the contract's list: every step is published so the projection can be rebuilt.
              ("meeting", "the lead unit recorded a meeting with the deputy (三见面)"),
              ("assisting_view", "an assisting unit gave its view to the lead unit"),
              ("director_decision",
               "the congress director's meeting (主任会议) decided after a second dissatisfaction"),
              ("carried_over", "unsolved at year end, carried into next year's list (滚动办理)"),
              ("extension_requested", "the lead unit asked congress staff for the one extension; they grant it by "
                                      "extending"),
          )),
        EventSpec("suggestions.topic.closed", "congress staff closed a supervision topic without taking it up: `id` "
                                              "(the hotspot's), `note`, `region_code`, `at`"),
    ),
    "scoring": (
        EventSpec("scoring.points.recorded", "a ledger entry changed a deputy's points"),
        # Paged: a province's ranking whole would pass NATS's 1 MB limit and hold up the outbox.
        EventSpec("scoring.ranking.published",
                  "a ranking was published and frozen: one event per page of rows (`page` of `pages`, `rows` from "
                  "`offset`, each page under 256 KiB of rows), every page with the publication's `id`, `year`, "
                  "`region_code`, `level`, `deputies` and `digest` (sha256 of one `rank|deputy_id|total` line per "
                  "row, totals with two decimals); the rows are also at GET /v1/rankings"),
        # Not in the contract's list: rules are data, and the ledger is rebuilt from this stream.
        EventSpec("scoring.rules.changed", "a region's points rules have a new version, in force from its date"),
    ),
    "identity": (
        EventSpec("identity.deputy.updated", "a deputy was created or changed"),
        EventSpec("identity.station.updated", "a station was created or changed"),
        EventSpec("identity.reconciliation.completed", "a voter-roll reconciliation finished"),
    ),
}
