"""The console: server-rendered pages for auditors and citizens (Flask and Jinja2), with
its own small CSS and JavaScript shipped in the package, nothing from elsewhere.

A bearer token signs in once; the session is a server-side row named by an HttpOnly,
SameSite=Strict cookie. Every page is sent with a Content-Security-Policy of
`default-src 'self'`: no inline script or style, no other origin. An auditor or an
admin may open any citizen; a citizen only themselves.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

import orjson
from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    jsonify,
    redirect,
    render_template,
    request,
    url_for,
)

from ledger.application import CHINA_STANDARD_TIME, Ledger
from ledger.domain.identity import parse_resident_id
from ledger.errors import LedgerError
from ledger.partitioned import PartitionedLedger
from ledger.partitioned.checkpoints import top_checkpoints, top_link
from ledger.transparency.audit import Log
from projections.disputes import open_disputes
from projections.explanation import explain
from projections.queries import merged
from projections.scoring import contributions, fold
from projections.timeline import Step, score_steps
from scripts.service.access import ledger_parts
from scripts.service.sessions import Sessions
from scripts.tokens import Token, TokenError

COOKIE = "ledger_console"
CSP = "default-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
CONSOLE_ROLES = frozenset({"auditor", "admin", "citizen"})
# Rows of the enforcement list a page.
LIST_PAGE = 50
# The chart's drawing area, in the SVG's own units (it scales with the page).
WIDTH, HEIGHT, MARGIN = 640, 220, 36


def console_blueprint() -> Blueprint:
    blp = Blueprint("console", __name__, url_prefix="/console", template_folder="templates",
                    static_folder="static", static_url_path="/static")  # fmt: skip

    @blp.after_request
    def secured(response: Response) -> Response:
        response.headers["Content-Security-Policy"] = CSP
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "no-referrer"
        response.headers["Cache-Control"] = "no-store"
        return response

    @blp.get("/")
    def home() -> Any:
        token = _signed_in()
        if token is None:
            return render_template("console/sign_in.html", error=None)
        if token.citizen is not None:
            return redirect(url_for("console.citizen", citizen=token.citizen))
        wanted = request.args.get("citizen", "").strip()
        if wanted:
            return redirect(url_for("console.citizen", citizen=wanted))
        return render_template("console/home.html", token=token)

    @blp.post("/sign-in")
    def sign_in() -> Any:
        presented = request.form.get("token", "").strip()
        now = _now()
        try:
            session_id, token = _sessions().open(presented, now)
        except TokenError as e:
            return render_template("console/sign_in.html", error=e.message), 401
        if token.role not in CONSOLE_ROLES:
            _sessions().close(session_id)
            error = f"a {token.role} token does not open the console"
            return render_template("console/sign_in.html", error=error), 403
        response = redirect(url_for("console.home"))
        response.set_cookie(COOKIE, session_id, httponly=True, samesite="Strict",
                            secure=request.is_secure, path="/console")  # fmt: skip
        return response

    @blp.post("/sign-out")
    def sign_out() -> Any:
        session_id = request.cookies.get(COOKIE)
        if session_id:
            _sessions().close(session_id)
        response = redirect(url_for("console.home"))
        response.delete_cookie(COOKIE, path="/console")
        return response

    @blp.get("/citizens/<citizen>")
    def citizen(citizen: str) -> Any:
        token = _signed_in()
        if token is None:
            return redirect(url_for("console.home"))
        try:
            resident = parse_resident_id(citizen).value
        except LedgerError as e:
            return render_template("console/error.html", title="Not a citizen",
                                   message=e.message), 404  # fmt: skip
        if token.citizen is not None and token.citizen != resident:
            return render_template(
                "console/error.html",
                title="Forbidden",
                message="a citizen's token opens only their own file",
            ), 403
        try:
            as_of = _date(request.args.get("as_of"))
            known_at = _instant(request.args.get("known_at"))
        except ValueError as e:
            return render_template("console/error.html", title="Bad request",
                                   message=str(e)), 400  # fmt: skip
        page = _citizen_page(resident, as_of, known_at)
        if page is None:
            return render_template(
                "console/error.html",
                title="Not found",
                message=f"{resident} has no records in the ledger",
            ), 404
        return render_template("console/citizen.html", token=token, page=page,
                               verifier=current_app.extensions.get("verifier"))  # fmt: skip

    _log_routes(blp)
    _data_routes(blp)
    return blp


def _log_routes(blp: Blueprint) -> None:
    """The log page: the signed checkpoints, and the enforcement list a page at a time."""

    @blp.get("/log")
    def log_page() -> Any:
        token = _signed_in()
        if token is None:
            return redirect(url_for("console.home"))
        if token.citizen is not None:
            return render_template("console/error.html", token=token, title="Forbidden",
                                   message="the log page is for auditors"), 403  # fmt: skip
        parts = ledger_parts()
        try:
            page_number = max(1, int(request.args.get("page", "1")))
            as_of = _date(request.args.get("as_of"))
            ledger, partition = _log(request.args.get("partition"), default=0)
        except ValueError as e:
            return render_template("console/error.html", token=token, title="Bad request",
                                   message=str(e)), 400  # fmt: skip
        day = as_of or parts.ledger.today()
        listed = merged(each.scores.enforcement(day) for each in parts.every())
        start = (page_number - 1) * LIST_PAGE
        kept = Log(ledger).store.checkpoints()
        count = 0 if parts.partitions is None else parts.partitions.routed.partitions
        return render_template(
            "console/log.html", token=token, verifier=current_app.extensions.get("verifier"),
            checkpoints=[{"size": size, "created_at": at, "root": note.split("\n")[2]}
                         for size, note, at in kept],
            listed=listed[start : start + LIST_PAGE], page=page_number, as_of=day,
            pages=max(1, -(-len(listed) // LIST_PAGE)), total=len(listed),
            partition=partition, partitions=range(count),
            log_query=_log_query(partition),
        )  # fmt: skip


def _data_routes(blp: Blueprint) -> None:
    """What a page fetches to check its records against the signed log."""

    @blp.get("/data/checkpoint")
    def latest_checkpoint() -> Any:
        """The latest signed checkpoint, for the page to check itself; of a partition,
        the one the latest top checkpoint signs, with the link to it."""
        if _signed_in() is None:
            abort(401)
        ledger, partition = _data_log()
        kept = Log(ledger).store.checkpoints()
        if partition is None:
            if not kept:
                abort(404)
            size, note, _ = kept[-1]
            return jsonify({"size": size, "note": note})
        if not kept:
            abort(404)
        routed = _routed()
        tops = top_checkpoints(routed)
        signed = tops[-1].leaf(partition + 1).size if tops else None
        covered = [(size, note) for size, note, _ in kept if size == signed]
        size, note = covered[-1] if covered else kept[-1][:2]
        return jsonify({"size": size, "note": note,
                        "top": top_link(routed, partition, size)})  # fmt: skip

    @blp.get("/data/checkpoints")
    def every_checkpoint() -> Any:
        """Every signed checkpoint, oldest first, for the log page to check."""
        token = _signed_in()
        if token is None or token.citizen is not None:
            abort(403)
        kept = Log(_data_log()[0]).store.checkpoints()
        return jsonify([{"size": size, "note": note} for size, note, _ in kept])

    @blp.get("/data/consistency")
    def consistency() -> Any:
        """A consistency proof between two tree sizes, for the log page to check."""
        token = _signed_in()
        if token is None or token.citizen is not None:
            abort(403)
        try:
            found = Log(_data_log()[0]).consistency(int(request.args["from"]),
                                                   int(request.args["to"]))  # fmt: skip
        except (KeyError, ValueError, LedgerError):
            abort(404)
        return jsonify({"proof": [base64.b64encode(h).decode() for h in found.proof]})

    @blp.get("/data/proof/<int:position>")
    def proof(position: int) -> Any:
        """A position's leaf document and its inclusion proof, for the page to check; a
        citizen gets only their own events'."""
        token = _signed_in()
        if token is None:
            abort(401)
        ledger, _ = _data_log()
        try:
            leaf = ledger.reader.leaf(position)
            size = int(request.args["size"]) if "size" in request.args else None
            found = Log(ledger).inclusion(position, size)
        except (LedgerError, ValueError):
            abort(404)
        if token.citizen is not None:
            own = str(parse_resident_id(token.citizen).citizen_id)
            if orjson.loads(leaf).get("aggregate") != own:
                abort(403)
        return jsonify(
            {
                "leaf": base64.b64encode(leaf).decode(),
                "index": found.index,
                "size": found.size,
                "proof": [base64.b64encode(h).decode() for h in found.proof],
            }
        )


def _log(asked: str | None, default: int | None = None) -> tuple[Ledger, int | None]:
    """The ledger of the log a page or its data is of, and its partition: the one log,
    or partition `asked` (else `default`) of a partitioned ledger. ValueError names what
    is wrong with `asked`."""
    parts = ledger_parts()
    if parts.partitions is None:
        if asked:
            raise ValueError("partition: this ledger is one log, not partitioned")
        return parts.ledger, None
    count = parts.partitions.routed.partitions
    try:
        partition = int(asked) if asked else default
    except ValueError:
        partition = None
    if partition is None or not 0 <= partition < count:
        raise ValueError(f"partition: {asked!r} is not one of the ledger's partitions, "
                         f"0 to {count - 1}")  # fmt: skip
    return parts.partitions.number(partition).ledger, partition


def _data_log() -> tuple[Ledger, int | None]:
    """The log a data request names (`partition`); 404 when there is no such log."""
    try:
        return _log(request.args.get("partition"))
    except ValueError:
        abort(404)


def _routed() -> PartitionedLedger:
    partitions = ledger_parts().partitions
    assert partitions is not None
    return partitions.routed


def _log_query(partition: int | None) -> str:
    """What a page's script adds to its data requests to name its log."""
    return "" if partition is None else f"partition={partition}"


def _sessions() -> Sessions:
    """The sessions over the ledger's parts now open (made again when they are)."""
    parts = ledger_parts()
    sessions: Sessions | None = current_app.extensions.get("console_sessions")
    if sessions is None or sessions.views is not parts.views:
        sessions = current_app.extensions["console_sessions"] = Sessions(parts.views, parts.tokens)
    return sessions


def _signed_in() -> Token | None:
    session_id = request.cookies.get(COOKIE)
    if not session_id:
        return None
    try:
        return _sessions().token(session_id, _now())
    except TokenError:
        return None


def _now() -> datetime:
    return ledger_parts().ledger.clock.now()


def _date(text: str | None) -> date | None:
    if not text:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise ValueError(f"as of: {text!r} is not a date (YYYY-MM-DD)") from None


def _instant(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        stamp = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"known at: {text!r} is not a date and time") from None
    return stamp if stamp.tzinfo else stamp.replace(tzinfo=CHINA_STANDARD_TIME)


# The citizen page


@dataclass(frozen=True, slots=True)
class Chart:
    """One policy's score over time, laid out for the SVG."""

    steps: list[dict[str, Any]]
    bands: list[dict[str, Any]]
    today_x: float
    shown_x: float | None
    expiries: list[dict[str, Any]]
    first: date


def _citizen_page(resident: str, as_of: date | None, known_at: datetime | None) -> Any:
    parts = ledger_parts()
    ledger, scores = parts.of(resident)
    partition = None if parts.partitions is None else (
        parts.partitions.routed.partition_of_resident(resident))  # fmt: skip
    try:
        audit = scores.audit_history(resident, known_at)
    except LedgerError:
        return None
    if not audit:
        return None
    today = ledger.today()
    day = as_of or today
    records = [step.entry for step in audit]
    facts = fold(resident, [logged.record for logged in records])
    first = min(logged.record.occurred_on for logged in records)
    policies = []
    for policy in scores.all_policies():
        items = contributions(facts, policy)
        explanation = explain(facts, items, day, policy)
        steps = score_steps(items, policy, first)
        ahead = sorted({c.counts_until for c in items if c.points < 0 and c.counts_until
                        and c.counts_until > day})  # fmt: skip
        policies.append(
            {
                "policy": policy,
                "explanation": explanation,
                "steps": steps,
                "chart": _chart(policy.bands, steps, today, day, ahead),
            }
        )
    uses = [u for u in ledger.reader.file(parse_resident_id(resident).citizen_id).uses
            if known_at is None or u.recorded_at <= known_at]  # fmt: skip
    disputes = list(open_disputes(facts))
    names = {a.authority_id: a.name for a in ledger.authorities()}
    parties = {p.party_id: p.name for p in ledger.parties()}
    return {
        "resident": resident, "as_of": day, "known_at": known_at, "today": today,
        "audit": audit, "policies": policies, "uses": uses, "disputes": disputes,
        "authorities": names, "parties": parties,
        "read_up_to": records[-1].position, "partition": partition,
        "log_query": _log_query(partition),
        "known_at_input": known_at.astimezone(CHINA_STANDARD_TIME).strftime("%Y-%m-%dT%H:%M:%S")
        if known_at else "",
    }  # fmt: skip


def _chart(bands: Any, steps: list[Step], today: date, shown: date, ahead: list[date]) -> Chart:
    first = steps[0].day
    last = max([today, shown, *ahead, steps[-1].day]) + timedelta(days=180)
    low = min(s.score for s in steps) - 40
    high = max(s.score for s in steps) + 40
    span = (last - first).days or 1

    def x(day: date) -> float:
        return round(MARGIN + (WIDTH - 2 * MARGIN) * (day - first).days / span, 1)

    def y(value: float) -> float:
        value = min(max(value, low), high)
        return round(HEIGHT - MARGIN - (HEIGHT - 2 * MARGIN) * (value - low) / (high - low), 1)

    laid = []
    for n, step in enumerate(steps):
        end = steps[n + 1].day if n + 1 < len(steps) else last
        laid.append({"step": step, "x1": x(step.day), "x2": x(end), "y": y(step.score),
                     "y_before": y(steps[n - 1].score) if n else y(step.score),
                     "change": n > 0})  # fmt: skip
    shaded = []
    tops = [high, *[b.min for b in bands]]
    for n, band in enumerate(bands):
        top, bottom = min(tops[n], high), max(band.min, low)
        if top > bottom:
            shaded.append({"band": band.band, "y": y(top), "height": round(y(bottom) - y(top), 1),
                           "even": n % 2 == 0})  # fmt: skip
    marks = [{"day": d, "x": x(d)} for d in ahead]
    return Chart(laid, shaded, x(today), x(shown) if shown != today else None, marks, first)
