"""Every sentence a person reads, in English and Hebrew: the dashboard's and the API's.

Texts are data (one table per language with the same keys), so a unit test can
prove that neither language misses a text or a placeholder the other has.
"""

from __future__ import annotations

from typing import Literal

Language = Literal["en", "he"]
LANGUAGES: tuple[Language, ...] = ("en", "he")

EN: dict[str, str] = {
    "brand": "wabroadcast",
    "api.not_connected": "WhatsApp is not connected. Connect first.",
    "skip": "Skip to content",
    "nav.overview": "Broadcasts",
    "nav.new": "New broadcast",
    "nav.sessions": "Sessions",
    "nav.main": "Main",
    "lang.label": "Language",
    "lang.en": "English",
    "lang.he": "עברית",
    "sign_out": "Sign out",
    "signed_in_as": "Signed in as {name}",
    "conn.connected": "WhatsApp connected",
    "conn.disconnected": "WhatsApp not connected",
    "conn.unknown": "WhatsApp status unknown",
    "banner.title": "WhatsApp not connected",
    "banner.body": (
        "New broadcasts are refused, and queued messages wait, until session {session} "
        "connects again."
    ),
    "live.stale": "Live updates paused: the server did not answer. Retrying…",
    "signin.title": "Sign in",
    "signin.api_key": "API key",
    "signin.help": (
        "The business's API key, as printed by “wabroadcast tenant create” or by “make demo”."
    ),
    "signin.submit": "Sign in",
    "signin.invalid": "That API key is not valid.",
    "signin.form_expired": "The sign-in form expired. Please try again.",
    "signin.signed_out": "You are signed out.",
    "signin.too_many": (
        "Too many failed sign-ins from this address: please wait about {minutes} minutes "
        "and try again."
    ),
    "signin.too_many_1": (
        "Too many failed sign-ins from this address: please wait about a minute and try again."
    ),
    "overview.title": "Overview",
    "tile.pending": "Pending",
    "tile.pending.hint": "queued or being sent",
    "tile.sent_5m": "Sent",
    "tile.failed_5m": "Failed",
    "tile.last_5m": "last 5 minutes",
    "tile.active": "Active broadcasts",
    "tile.active.hint": "scheduled, queued, running or paused",
    "chart.title": "Sent and failed per minute, last hour",
    "chart.summary": "{sent} sent and {failed} failed in the last hour",
    "chart.minutes_ago": "−{n} min",
    "chart.now": "now",
    "chart.bar": "{time} UTC: {sent} sent, {failed} failed",
    "legend.sent": "Sent",
    "legend.failed": "Failed",
    "list.title": "Broadcasts",
    "list.empty": "No broadcasts yet.",
    "list.empty_filtered": "No broadcasts with this status.",
    "list.create_first": "Send your first broadcast",
    "filter.status": "Status",
    "filter.all": "All",
    "filter.apply": "Filter",
    "col.id": "#",
    "col.message": "Message",
    "col.status": "Status",
    "col.progress": "Progress",
    "col.sent": "Sent",
    "col.delivered": "Delivered",
    "col.failed": "Failed",
    "col.created": "Created",
    "pager.older": "Older broadcasts",
    "pager.newest": "Newest broadcasts",
    "pager.next": "Next page",
    "pager.first": "First page",
    "pager.label": "Pages",
    "progress.label": "{done} of {total} done ({percent}%)",
    "status.accepted": "accepted",
    "status.scheduled": "scheduled",
    "status.queued": "queued",
    "status.running": "running",
    "status.paused": "paused",
    "status.completed": "completed",
    "status.partial": "partial",
    "status.failed": "failed",
    "status.cancelled": "cancelled",
    "rstatus.queued": "queued",
    "rstatus.sending": "sending",
    "rstatus.sent": "sent",
    "rstatus.delivered": "delivered",
    "rstatus.read": "read",
    "rstatus.failed": "failed",
    "rstatus.cancelled": "cancelled",
    "detail.title": "Broadcast #{id}",
    "detail.back": "All broadcasts",
    "detail.message": "Message",
    "detail.counts": "Progress",
    "detail.reason": "Why: {reason}",
    "count.total": "Recipients",
    "count.queued": "Queued",
    "count.sent": "Sent",
    "count.delivered": "Delivered",
    "count.read": "Read",
    "count.failed": "Failed",
    "count.cancelled": "Cancelled",
    "count.invalid": "Invalid (not stored)",
    "count.duplicates": "Duplicates removed",
    "timeline.title": "Timeline",
    "timeline.created": "Created",
    "timeline.started": "Started",
    "timeline.finished": "Finished",
    "timeline.not_yet": "not yet",
    "cancel.button": "Cancel broadcast",
    "cancel.help": "Queued recipients will not be sent; sends already in flight finish.",
    "cancel.done": "The broadcast was cancelled.",
    "cancel.finished": "The broadcast had already finished; nothing was cancelled.",
    "resume.button": "Resume sending",
    "resume.help": (
        "Resume once the WhatsApp account is fine again; if WhatsApp still refuses it, "
        "the broadcast pauses again at the first send."
    ),
    "resume.done": "The broadcast was resumed: the recipients it held are sent next.",
    "resume.finished": "The broadcast had already finished; there is nothing to resume.",
    "export.failed": "Download failed recipients (CSV)",
    "recipients.title": "Recipients",
    "recipients.empty": "No recipients with this status.",
    "recipients.on_page": "{count} recipients on this page",
    "rcol.phone": "Phone",
    "rcol.name": "Name",
    "rcol.status": "Status",
    "rcol.attempts": "Attempts",
    "rcol.reason": "Failure reason",
    "rcol.times": "When",
    "time.queued": "queued",
    "time.sent": "sent",
    "time.delivered": "delivered",
    "time.read": "read",
    "time.failed": "failed",
    "proof.title": "Broadcast accepted",
    "proof.body": (
        "Broadcast #{id}: {queued} recipients queued, {invalid} invalid (not stored), "
        "{duplicates} duplicates removed."
    ),
    "proof.replayed": "This form had already been sent: no second broadcast was created.",
    "proof.invalid_examples": "Invalid inputs",
    "new.title": "New broadcast",
    "new.message": "Message",
    "new.message_help": "Up to {max} characters.",
    "new.recipients": "Phone numbers",
    "new.recipients_help": (
        "One per line, or separated by commas. Numbers without a country code are read as {region}."
    ),
    "new.csv": "Or upload a CSV file",
    "new.csv_help": (
        "Separated by commas, semicolons or tabs. A phone column (headed phone, mobile, tel, "
        "טלפון or נייד, or simply full of numbers); name and lead_id columns are optional."
    ),
    "new.csv_again": "Choose the CSV file again: a browser does not keep a chosen file.",
    "new.preview": "Preview",
    "new.send": "Send broadcast",
    "new.sending": "Sending…",
    "new.checking": "Checking…",
    "preview.title": "Preview",
    "preview.valid": "Valid recipients to queue",
    "preview.invalid": "Invalid (will not be stored)",
    "preview.duplicates": "Duplicates removed",
    "preview.reasons": "Why numbers are invalid",
    "preview.examples": "Examples",
    "preview.nothing": "Nothing to send yet: add phone numbers or a CSV file.",
    "reason.too_short": "too short (under 9 digits)",
    "reason.too_long": "too long (over 15 digits)",
    "reason.invalid_format": "not a phone number",
    "reason.invalid_number": "no such number",
    "error.no_recipients": "Add at least one phone number or a CSV file.",
    "error.no_valid": "None of the {count} recipients is a valid phone number.",
    "error.too_many": "A broadcast takes at most {max} recipients; this one has {count}.",
    "error.message_required": "Write the message to send.",
    "error.message_too_long": "The message is longer than {max} characters.",
    "error.recipient_invalid": "A row of the CSV file is not valid ({detail}).",
    "error.csv_encoding": "The CSV file must be UTF-8 or UTF-16 text.",
    "error.csv_unreadable": "The file could not be read as CSV ({detail}).",
    "error.csv_no_phone_column": (
        "No phone column found in the CSV file (columns seen: {columns}). "
        "Head the phone column phone, mobile, tel, טלפון or נייד."
    ),
    "error.csv_too_large": "The CSV file is larger than {mb} MB.",
    "error.key_mismatch": (
        "This form was already used for a different broadcast. It has been renewed: "
        "check it and send again."
    ),
    "error.key_in_use": (
        "This form is still being sent. It will appear in the broadcasts list in a moment."
    ),
    "error.other": "The broadcast was not sent: {message}",
    "sessions.title": "WhatsApp sessions",
    "sessions.intro": (
        "Each session is one WhatsApp number, connected through one provider. Broadcasts "
        "sent from this dashboard go through the default session."
    ),
    "sessions.list": "Your sessions",
    "sessions.empty": "No sessions yet: add one below to start sending.",
    "sessions.add": "Add a session",
    "sessions.add_help": "Choose the provider of the new number.",
    "sessions.add_with": "Add a {provider} session",
    "sessions.unknown_provider": "There is no provider called “{kind}”. Choose one of these.",
    "sessions.edit": "Edit",
    "sessions.edit_label": "Edit session {id}",
    "sessions.default": "default",
    "sessions.back": "All sessions",
    "sessions.created": "The session was added.",
    "sessions.saved": "The changes were saved.",
    "sessions.deleted": "The session was deleted.",
    "sessions.error.fields": "The session was not saved: correct the fields below.",
    "sessions.error.exists": (
        "The session was not saved: a session with the id {id} already exists."
    ),
    "sessions.error.exists_short": "This id is taken.",
    "sessions.error.webhook_key": (
        "The session was not saved: another session already receives {provider} webhooks "
        "for this number."
    ),
    "sessions.error.in_use": (
        "The session was not deleted. The session has {count} active broadcast(s): cancel them "
        "or wait for them to finish before deleting it."
    ),
    "sessions.error.other": "The session was not saved: {message}",
    "scol.id": "Session",
    "scol.provider": "Provider",
    "scol.state": "Connection",
    "scol.pace": "Pace",
    "scol.concurrency": "Max concurrency",
    "scol.webhook": "Webhook URL",
    "scol.actions": "Actions",
    "sstate.connected": "connected",
    "sstate.disconnected": "not connected",
    "sstate.unknown": "unknown",
    "pace.rate": "{rate} per minute",
    "pace.unpaced": "not paced",
    "pace.jitter": "jitter up to {ms} ms",
    "pace.no_jitter": "no jitter",
    "pace.default": "provider default",
    "webhook.none": "None: this provider sends no webhooks.",
    "webhook.help": "Paste this address into the provider's console.",
    "webhook.warning": "Providers may not reach the webhook address:",
    "webhook.warning_row": "Providers may not reach this address (see the note above).",
    "copy.button": "Copy",
    "copy.done": "Copied",
    "session_new.title": "New {provider} session",
    "session_edit.title": "Session {id}",
    "form.provider_settings": "{provider} settings",
    "form.no_config": "This provider needs no settings.",
    "form.sending": "Session and sending",
    "form.session_id": "Session id",
    "form.session_id_help": (
        "Letters, digits and . _ - (up to 64). Leave it empty for a generated id."
    ),
    "form.default": "Make this the default session",
    "form.default_help": "New broadcasts from this dashboard go through the default session.",
    "form.is_default": "This is the default session.",
    "form.max_concurrency": "Max concurrency",
    "form.max_concurrency_help": "Sends in flight at once, 1 to 64.",
    "form.rate_per_minute": "Messages per minute",
    "form.rate_per_minute_help": "0: not paced.",
    "form.jitter_ms": "Jitter (ms)",
    "form.jitter_ms_help": "A random extra wait before each send, up to this many milliseconds.",
    "form.empty_default": "Empty: the provider's default, {value}.",
    "form.empty_keep": "Empty: unchanged.",
    "form.now_default": "Now the provider's default, {value}; empty: unchanged.",
    "form.secret_new": "Stored encrypted; never shown again.",
    "form.secret_stored": "Stored: {mask}; leave empty to keep it.",
    "form.required": "required",
    "form.create": "Add session",
    "form.save": "Save changes",
    "form.saving": "Saving…",
    "form.cancel": "Cancel",
    "form.error.required": "This field is required.",
    "form.error.number": "Enter a number.",
    "form.error.whole_number": "Enter a whole number.",
    "delete.title": "Delete this session",
    "delete.help": (
        "Its finished broadcasts stay readable. A session with active broadcasts cannot be deleted."
    ),
    "delete.confirm": "Yes, delete session {id}",
    "delete.button": "Delete session",
    "delete.unconfirmed": "Tick “Yes, delete session {id}” to confirm, then delete again.",
    "sessions.connect": "Connect",
    "sessions.connect_label": "Connect session {id}: link a phone by QR code",
    "connect.title": "Connect session {id}",
    "connect.lead": (
        "{provider}: link this session's WhatsApp number by scanning a QR code with the phone."
    ),
    "connect.settings": "Session settings",
    "connect.phone": "Phone link",
    "connect.state": "State:",
    "lstate.connected": "connected",
    "lstate.connecting": "connecting",
    "lstate.qr": "waiting for the scan",
    "lstate.logged_out": "logged out",
    "lstate.closed": "closed",
    "lstate.not_started": "not started",
    "connect.scan": "Scan this code with the phone of the session's number:",
    "connect.step_open": "Open WhatsApp on the phone.",
    "connect.step_menu": "Go to Settings → Linked devices → Link a device.",
    "connect.step_scan": "Point the phone at this code.",
    "connect.qr_alt": "QR code to link a phone to session {id}",
    "connect.qr_rotates": (
        "WhatsApp replaces the code every few seconds; this page shows the newest one by itself."
    ),
    "connect.qr_no_image": "The code could not be drawn. What it encodes:",
    "connect.connecting": "Connecting to WhatsApp… The QR code appears here in a few seconds.",
    "connect.connected_as": "Connected as {me}.",
    "connect.connected": "Connected.",
    "connect.connected_help": "Broadcasts through this session go out from this number.",
    "connect.back_to_sessions": "Back to sessions",
    "connect.logged_out": (
        "The phone was unlinked from this session. Connect to link a phone again with a new "
        "QR code."
    ),
    "connect.closed": (
        "The gateway closed this session's connection to WhatsApp. Connect to start it again."
    ),
    "connect.not_started": (
        "This session is not started on the gateway yet. Connect to start it and show its QR code."
    ),
    "connect.detail": "The gateway says:",
    "connect.button": "Connect",
    "connect.retry": "Try again",
    "connect.starting": "Connecting…",
    "connect.gateway_failed": (
        "The gateway did not answer ({reason}). Check that it is running and that the "
        "session's gateway address and token are right, then try again."
    ),
    "connect.not_linkable": (
        "{provider} sessions are connected in their provider's own console, not by QR code here."
    ),
    "connect.link_title": "Link a phone",
    "connect.link_help": (
        "This provider links a WhatsApp number by QR code: Connect shows the code to scan "
        "with the phone."
    ),
    "connect.link_page": "See the phone link",
    "logout.title": "Log out the phone",
    "logout.help": (
        "WhatsApp forgets this linked device: sending through this session stops until a phone "
        "is linked again with a new QR code."
    ),
    "logout.confirm": "Yes, log out session {id}",
    "logout.button": "Log out",
    "logout.busy": "Logging out…",
    "logout.unconfirmed": "Tick “Yes, log out session {id}” to confirm, then log out again.",
    "logout.done": "The phone was logged out of session {id}.",
    "errorpage.title": "Something went wrong",
    "errorpage.403": (
        "This form has expired or did not come from this dashboard. Reload the page and try again."
    ),
    "errorpage.404": (
        "Not found: there is no such page, broadcast or session, or it is not yours."
    ),
    "errorpage.409": "That cannot be done now: {message}",
    "errorpage.422": "The address has a value this page does not understand ({message}).",
    "errorpage.400": "The request could not be read ({message}).",
    "errorpage.other": "The server could not do that ({message}).",
    "errorpage.500": "The server failed to show this page. The error was logged; try again.",
    "errorpage.back": "Back to the overview",
}

HE: dict[str, str] = {
    "api.not_connected": "WhatsApp לא מחובר. יש להתחבר תחילה",
    "brand": "wabroadcast",
    "skip": "דילוג לתוכן",
    "nav.overview": "תפוצות",
    "nav.new": "תפוצה חדשה",
    "nav.sessions": "חיבורים",
    "nav.main": "ראשי",
    "lang.label": "שפה",
    "lang.en": "English",
    "lang.he": "עברית",
    "sign_out": "התנתקות",
    "signed_in_as": "מחובר כ־{name}",
    "conn.connected": "WhatsApp מחובר",
    "conn.disconnected": "WhatsApp לא מחובר",
    "conn.unknown": "מצב WhatsApp לא ידוע",
    "banner.title": "WhatsApp לא מחובר",
    "banner.body": "תפוצות חדשות נדחות, והודעות שבתור ממתינות, עד שהחיבור {session} יחודש.",
    "live.stale": "העדכונים החיים נעצרו: השרת לא ענה. מנסה שוב…",
    "signin.title": "כניסה",
    "signin.api_key": "מפתח API",
    "signin.help": (
        "מפתח ה־API של העסק, כפי שהודפס על ידי „wabroadcast tenant create” או על ידי „make demo”."
    ),
    "signin.submit": "כניסה",
    "signin.invalid": "מפתח ה־API הזה אינו תקין.",
    "signin.form_expired": "טופס הכניסה פג תוקף. נסו שוב.",
    "signin.signed_out": "התנתקתם.",
    "signin.too_many": (
        "יותר מדי ניסיונות כניסה כושלים מכתובת זו: המתינו כ־{minutes} דקות ונסו שוב."
    ),
    "signin.too_many_1": "יותר מדי ניסיונות כניסה כושלים מכתובת זו: המתינו כדקה ונסו שוב.",
    "overview.title": "סקירה",
    "tile.pending": "ממתינות",
    "tile.pending.hint": "בתור או בשליחה",
    "tile.sent_5m": "נשלחו",
    "tile.failed_5m": "נכשלו",
    "tile.last_5m": "ב־5 הדקות האחרונות",
    "tile.active": "תפוצות פעילות",
    "tile.active.hint": "מתוזמנות, בתור, בשליחה או מושהות",
    "chart.title": "נשלחו ונכשלו לפי דקה, בשעה האחרונה",
    "chart.summary": "{sent} נשלחו ו־{failed} נכשלו בשעה האחרונה",
    "chart.minutes_ago": "לפני {n} ד׳",
    "chart.now": "עכשיו",
    "chart.bar": "{time} UTC: {sent} נשלחו, {failed} נכשלו",
    "legend.sent": "נשלחו",
    "legend.failed": "נכשלו",
    "list.title": "תפוצות",
    "list.empty": "אין עדיין תפוצות.",
    "list.empty_filtered": "אין תפוצות בסטטוס הזה.",
    "list.create_first": "שלחו את התפוצה הראשונה",
    "filter.status": "סטטוס",
    "filter.all": "הכול",
    "filter.apply": "סינון",
    "col.id": "#",
    "col.message": "הודעה",
    "col.status": "סטטוס",
    "col.progress": "התקדמות",
    "col.sent": "נשלחו",
    "col.delivered": "נמסרו",
    "col.failed": "נכשלו",
    "col.created": "נוצרה",
    "pager.older": "תפוצות קודמות",
    "pager.newest": "התפוצות החדשות",
    "pager.next": "העמוד הבא",
    "pager.first": "העמוד הראשון",
    "pager.label": "עמודים",
    "progress.label": "{done} מתוך {total} הסתיימו ({percent}%)",
    "status.accepted": "התקבלה",
    "status.scheduled": "מתוזמנת",
    "status.queued": "בתור",
    "status.running": "בשליחה",
    "status.paused": "מושהית",
    "status.completed": "הושלמה",
    "status.partial": "חלקית",
    "status.failed": "נכשלה",
    "status.cancelled": "בוטלה",
    "rstatus.queued": "בתור",
    "rstatus.sending": "בשליחה",
    "rstatus.sent": "נשלחה",
    "rstatus.delivered": "נמסרה",
    "rstatus.read": "נקראה",
    "rstatus.failed": "נכשלה",
    "rstatus.cancelled": "בוטלה",
    "detail.title": "תפוצה #{id}",
    "detail.back": "כל התפוצות",
    "detail.message": "הודעה",
    "detail.counts": "התקדמות",
    "detail.reason": "סיבה: {reason}",
    "count.total": "נמענים",
    "count.queued": "בתור",
    "count.sent": "נשלחו",
    "count.delivered": "נמסרו",
    "count.read": "נקראו",
    "count.failed": "נכשלו",
    "count.cancelled": "בוטלו",
    "count.invalid": "לא תקינים (לא נשמרו)",
    "count.duplicates": "כפילויות שהוסרו",
    "timeline.title": "ציר זמן",
    "timeline.created": "נוצרה",
    "timeline.started": "השליחה החלה",
    "timeline.finished": "הסתיימה",
    "timeline.not_yet": "עדיין לא",
    "cancel.button": "ביטול התפוצה",
    "cancel.help": "נמענים שבתור לא יקבלו את ההודעה; שליחות שכבר יצאו יסתיימו.",
    "cancel.done": "התפוצה בוטלה.",
    "cancel.finished": "התפוצה כבר הסתיימה; דבר לא בוטל.",
    "resume.button": "חידוש השליחה",
    "resume.help": (
        "חדשו את השליחה כשחשבון ה-WhatsApp תקין שוב; אם WhatsApp עדיין חוסם אותו, "
        "התפוצה תושהה שוב בשליחה הראשונה."
    ),
    "resume.done": "השליחה חודשה: הנמענים שהמתינו יישלחו עכשיו.",
    "resume.finished": "התפוצה כבר הסתיימה; אין מה לחדש.",
    "export.failed": "הורדת הנמענים שנכשלו (CSV)",
    "recipients.title": "נמענים",
    "recipients.empty": "אין נמענים בסטטוס הזה.",
    "recipients.on_page": "{count} נמענים בעמוד זה",
    "rcol.phone": "טלפון",
    "rcol.name": "שם",
    "rcol.status": "סטטוס",
    "rcol.attempts": "ניסיונות",
    "rcol.reason": "סיבת הכישלון",
    "rcol.times": "מתי",
    "time.queued": "בתור",
    "time.sent": "נשלחה",
    "time.delivered": "נמסרה",
    "time.read": "נקראה",
    "time.failed": "נכשלה",
    "proof.title": "התפוצה התקבלה",
    "proof.body": (
        "תפוצה #{id}: {queued} נמענים נכנסו לתור, {invalid} לא תקינים (לא נשמרו), "
        "{duplicates} כפילויות הוסרו."
    ),
    "proof.replayed": "הטופס הזה כבר נשלח: לא נוצרה תפוצה נוספת.",
    "proof.invalid_examples": "קלטים לא תקינים",
    "new.title": "תפוצה חדשה",
    "new.message": "הודעה",
    "new.message_help": "עד {max} תווים.",
    "new.recipients": "מספרי טלפון",
    "new.recipients_help": (
        "אחד בכל שורה, או מופרדים בפסיקים. מספרים בלי קידומת מדינה ייקראו כמספרים של {region}."
    ),
    "new.csv": "או העלאת קובץ CSV",
    "new.csv_help": (
        "מופרד בפסיקים, בנקודה־פסיק או בטאבים. עמודת טלפון (בכותרת טלפון, נייד, phone או mobile, "
        "או פשוט מלאה במספרים); עמודות שם ו־lead_id רשות."
    ),
    "new.csv_again": "יש לבחור שוב את קובץ ה־CSV: דפדפן אינו שומר קובץ שנבחר.",
    "new.preview": "תצוגה מקדימה",
    "new.send": "שליחת התפוצה",
    "new.sending": "שולח…",
    "new.checking": "בודק…",
    "preview.title": "תצוגה מקדימה",
    "preview.valid": "נמענים תקינים שייכנסו לתור",
    "preview.invalid": "לא תקינים (לא יישמרו)",
    "preview.duplicates": "כפילויות שיוסרו",
    "preview.reasons": "מדוע מספרים אינם תקינים",
    "preview.examples": "דוגמאות",
    "preview.nothing": "אין עדיין למי לשלוח: הוסיפו מספרי טלפון או קובץ CSV.",
    "reason.too_short": "קצר מדי (פחות מ־9 ספרות)",
    "reason.too_long": "ארוך מדי (יותר מ־15 ספרות)",
    "reason.invalid_format": "אינו מספר טלפון",
    "reason.invalid_number": "מספר שאינו קיים",
    "error.no_recipients": "הוסיפו לפחות מספר טלפון אחד או קובץ CSV.",
    "error.no_valid": "אף אחד מ־{count} הנמענים אינו מספר טלפון תקין.",
    "error.too_many": "תפוצה יכולה לכלול עד {max} נמענים; בזו יש {count}.",
    "error.message_required": "כתבו את ההודעה לשליחה.",
    "error.message_too_long": "ההודעה ארוכה מ־{max} תווים.",
    "error.recipient_invalid": "שורה בקובץ ה־CSV אינה תקינה ({detail}).",
    "error.csv_encoding": "קובץ ה־CSV חייב להיות טקסט בקידוד UTF-8 או UTF-16.",
    "error.csv_unreadable": "לא ניתן לקרוא את הקובץ כקובץ CSV ({detail}).",
    "error.csv_no_phone_column": (
        "לא נמצאה עמודת טלפון בקובץ ה־CSV (העמודות שנמצאו: {columns}). "
        "יש לתת לעמודת הטלפון את הכותרת טלפון, נייד, phone או mobile."
    ),
    "error.csv_too_large": "קובץ ה־CSV גדול מ־{mb} MB.",
    "error.key_mismatch": "הטופס הזה כבר שימש לתפוצה אחרת. הוא חודש: בדקו אותו ושלחו שוב.",
    "error.key_in_use": "הטופס הזה עדיין נשלח. התפוצה תופיע ברשימת התפוצות בעוד רגע.",
    "error.other": "התפוצה לא נשלחה: {message}",
    "sessions.title": "חיבורי WhatsApp",
    "sessions.intro": (
        "כל חיבור הוא מספר WhatsApp אחד, המחובר דרך ספק אחד. תפוצות שנשלחות מלוח הבקרה "
        "הזה יוצאות דרך חיבור ברירת המחדל."
    ),
    "sessions.list": "החיבורים שלכם",
    "sessions.empty": "אין עדיין חיבורים: הוסיפו חיבור למטה כדי להתחיל לשלוח.",
    "sessions.add": "הוספת חיבור",
    "sessions.add_help": "בחרו את הספק של המספר החדש.",
    "sessions.add_with": "הוספת חיבור {provider}",
    "sessions.unknown_provider": "אין ספק בשם „{kind}”. בחרו אחד מאלה.",
    "sessions.edit": "עריכה",
    "sessions.edit_label": "עריכת החיבור {id}",
    "sessions.default": "ברירת מחדל",
    "sessions.back": "כל החיבורים",
    "sessions.created": "החיבור נוסף.",
    "sessions.saved": "השינויים נשמרו.",
    "sessions.deleted": "החיבור נמחק.",
    "sessions.error.fields": "החיבור לא נשמר: תקנו את השדות שלמטה.",
    "sessions.error.exists": "החיבור לא נשמר: כבר קיים חיבור עם המזהה {id}.",
    "sessions.error.exists_short": "המזהה הזה תפוס.",
    "sessions.error.webhook_key": (
        "החיבור לא נשמר: חיבור אחר כבר מקבל webhooks של {provider} עבור המספר הזה."
    ),
    "sessions.error.in_use": (
        "החיבור לא נמחק. יש בו {count} תפוצות פעילות: בטלו אותן או המתינו לסיומן לפני המחיקה."
    ),
    "sessions.error.other": "החיבור לא נשמר: {message}",
    "scol.id": "חיבור",
    "scol.provider": "ספק",
    "scol.state": "מצב",
    "scol.pace": "קצב",
    "scol.concurrency": "שליחות במקביל",
    "scol.webhook": "כתובת Webhook",
    "scol.actions": "פעולות",
    "sstate.connected": "מחובר",
    "sstate.disconnected": "לא מחובר",
    "sstate.unknown": "לא ידוע",
    "pace.rate": "{rate} לדקה",
    "pace.unpaced": "ללא הגבלת קצב",
    "pace.jitter": "השהיה אקראית עד {ms} ms",
    "pace.no_jitter": "ללא השהיה אקראית",
    "pace.default": "ברירת המחדל של הספק",
    "webhook.none": "אין: הספק הזה אינו שולח webhooks.",
    "webhook.help": "הדביקו את הכתובת הזו במסוף של הספק.",
    "webhook.warning": "ייתכן שספקים לא יוכלו להגיע לכתובת ה־webhook:",
    "webhook.warning_row": "ייתכן שספקים לא יוכלו להגיע לכתובת הזו (ראו את ההערה למעלה).",
    "copy.button": "העתקה",
    "copy.done": "הועתק",
    "session_new.title": "חיבור {provider} חדש",
    "session_edit.title": "חיבור {id}",
    "form.provider_settings": "הגדרות {provider}",
    "form.no_config": "הספק הזה אינו צריך הגדרות.",
    "form.sending": "החיבור והשליחה",
    "form.session_id": "מזהה החיבור",
    "form.session_id_help": (
        "אותיות לטיניות, ספרות ו־. _ - (עד 64). השאירו ריק כדי שייווצר מזהה אוטומטית."
    ),
    "form.default": "הפיכת החיבור הזה לברירת המחדל",
    "form.default_help": "תפוצות חדשות מלוח הבקרה הזה יוצאות דרך חיבור ברירת המחדל.",
    "form.is_default": "זהו חיבור ברירת המחדל.",
    "form.max_concurrency": "שליחות במקביל (מרבי)",
    "form.max_concurrency_help": "מספר השליחות שיוצאות בו־זמנית, מ־1 עד 64.",
    "form.rate_per_minute": "הודעות לדקה",
    "form.rate_per_minute_help": "0: ללא הגבלת קצב.",
    "form.jitter_ms": "השהיה אקראית (ms)",
    "form.jitter_ms_help": "המתנה אקראית נוספת לפני כל שליחה, עד מספר זה של אלפיות שנייה.",
    "form.empty_default": "ריק: ברירת המחדל של הספק, {value}.",
    "form.empty_keep": "ריק: ללא שינוי.",
    "form.now_default": "כעת ברירת המחדל של הספק, {value}; ריק: ללא שינוי.",
    "form.secret_new": "נשמר מוצפן; לא יוצג שוב.",
    "form.secret_stored": "שמור: {mask}; השאירו ריק כדי לשמור עליו.",
    "form.required": "חובה",
    "form.create": "הוספת החיבור",
    "form.save": "שמירת השינויים",
    "form.saving": "שומר…",
    "form.cancel": "ביטול",
    "form.error.required": "זהו שדה חובה.",
    "form.error.number": "הזינו מספר.",
    "form.error.whole_number": "הזינו מספר שלם.",
    "delete.title": "מחיקת החיבור",
    "delete.help": (
        "התפוצות שהסתיימו יישארו זמינות לקריאה. אי אפשר למחוק חיבור שיש בו תפוצות פעילות."
    ),
    "delete.confirm": "כן, למחוק את החיבור {id}",
    "delete.button": "מחיקת החיבור",
    "delete.unconfirmed": "סמנו „כן, למחוק את החיבור {id}” כדי לאשר, ומחקו שוב.",
    "sessions.connect": "קישור טלפון",
    "sessions.connect_label": "קישור טלפון לחיבור {id} בקוד QR",
    "connect.title": "קישור טלפון לחיבור {id}",
    "connect.lead": "{provider}: קשרו את מספר ה־WhatsApp של החיבור הזה בסריקת קוד QR בטלפון.",
    "connect.settings": "הגדרות החיבור",
    "connect.phone": "קישור הטלפון",
    "connect.state": "מצב:",
    "lstate.connected": "מחובר",
    "lstate.connecting": "מתחבר",
    "lstate.qr": "ממתין לסריקה",
    "lstate.logged_out": "מנותק",
    "lstate.closed": "סגור",
    "lstate.not_started": "לא הופעל",
    "connect.scan": "סרקו את הקוד הזה בטלפון של המספר של החיבור:",
    "connect.step_open": "פתחו את WhatsApp בטלפון.",
    "connect.step_menu": "עברו אל הגדרות ← מכשירים מקושרים ← קישור מכשיר.",
    "connect.step_scan": "כוונו את הטלפון אל הקוד הזה.",
    "connect.qr_alt": "קוד QR לקישור טלפון לחיבור {id}",
    "connect.qr_rotates": (
        "WhatsApp מחליף את הקוד כל כמה שניות; הדף הזה מציג מעצמו את הקוד החדש ביותר."
    ),
    "connect.qr_no_image": "לא ניתן היה לצייר את הקוד. מה שהוא מקודד:",
    "connect.connecting": "מתחבר ל־WhatsApp… קוד ה־QR יופיע כאן בעוד כמה שניות.",
    "connect.connected_as": "מחובר בתור {me}.",
    "connect.connected": "מחובר.",
    "connect.connected_help": "תפוצות דרך החיבור הזה יוצאות מהמספר הזה.",
    "connect.back_to_sessions": "חזרה לחיבורים",
    "connect.logged_out": (
        "הטלפון נותק מהחיבור הזה. לחצו על קישור טלפון כדי לקשר טלפון שוב בקוד QR חדש."
    ),
    "connect.closed": (
        "השער סגר את הקשר של החיבור הזה עם WhatsApp. לחצו על קישור טלפון כדי להפעיל אותו שוב."
    ),
    "connect.not_started": (
        "החיבור הזה עדיין לא הופעל בשער. לחצו על קישור טלפון כדי להפעיל אותו ולהציג את קוד ה־QR."
    ),
    "connect.detail": "השער מוסר:",
    "connect.button": "קישור טלפון",
    "connect.retry": "לנסות שוב",
    "connect.starting": "מתחבר…",
    "connect.gateway_failed": (
        "השער לא ענה ({reason}). ודאו שהוא פועל ושכתובת השער והאסימון של החיבור נכונים, ונסו שוב."
    ),
    "connect.not_linkable": "חיבורי {provider} מחוברים במסוף של הספק עצמו, לא בקוד QR כאן.",
    "connect.link_title": "קישור טלפון",
    "connect.link_help": (
        "הספק הזה מקשר מספר WhatsApp בקוד QR: קישור טלפון מציג את הקוד לסריקה בטלפון."
    ),
    "connect.link_page": "מצב קישור הטלפון",
    "logout.title": "ניתוק הטלפון",
    "logout.help": (
        "WhatsApp ישכח את המכשיר המקושר הזה: השליחה דרך החיבור הזה תיפסק עד שטלפון יקושר "
        "שוב בקוד QR חדש."
    ),
    "logout.confirm": "כן, לנתק את הטלפון מהחיבור {id}",
    "logout.button": "ניתוק",
    "logout.busy": "מנתק…",
    "logout.unconfirmed": "סמנו „כן, לנתק את הטלפון מהחיבור {id}” כדי לאשר, ונתקו שוב.",
    "logout.done": "הטלפון נותק מהחיבור {id}.",
    "errorpage.title": "משהו השתבש",
    "errorpage.403": "הטופס פג תוקף או שלא נשלח מלוח הבקרה הזה. טענו מחדש את הדף ונסו שוב.",
    "errorpage.404": "לא נמצא: אין דף, תפוצה או חיבור כאלה, או שאינם שלכם.",
    "errorpage.409": "אי אפשר לעשות זאת כעת: {message}",
    "errorpage.422": "בכתובת יש ערך שהדף הזה אינו מבין ({message}).",
    "errorpage.400": "לא ניתן היה לקרוא את הבקשה ({message}).",
    "errorpage.other": "השרת לא הצליח לעשות זאת ({message}).",
    "errorpage.500": "השרת לא הצליח להציג את הדף. השגיאה נרשמה ביומן; נסו שוב.",
    "errorpage.back": "חזרה לסקירה",
}

TEXTS: dict[Language, dict[str, str]] = {"en": EN, "he": HE}


class Translator:
    """``t("key", name=value)``: the text of ``key`` in one language, placeholders filled."""

    def __init__(self, language: Language) -> None:
        self.language = language
        self._texts = TEXTS[language]

    @property
    def direction(self) -> Literal["ltr", "rtl"]:
        return "rtl" if self.language == "he" else "ltr"

    def __call__(self, key: str, **values: object) -> str:
        text = self._texts[key]
        return text.format(**values) if values else text

    def or_raw(self, prefix: str, code: str) -> str:
        """The text of ``prefix + code`` if there is one, else ``code`` itself (a new code)."""
        return self._texts.get(prefix + code, code)


def translate(language: Language, key: str, **values: object) -> str:
    """The text of ``key`` in ``language``, placeholders filled."""
    return Translator(language)(key, **values)
