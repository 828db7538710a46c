"""The dashboard's words in English and Hebrew, and how a request picks its language.

Texts are data (one table per language with the same keys), so a unit test can
prove that neither language misses a text or a placeholder the other has.
"""

from __future__ import annotations

from typing import Literal

from starlette.requests import Request

Language = Literal["en", "he"]
LANGUAGES: tuple[Language, ...] = ("en", "he")
LANGUAGE_COOKIE = "wab_lang"

EN: dict[str, str] = {
    "brand": "wabroadcast",
    "skip": "Skip to content",
    "nav.overview": "Broadcasts",
    "nav.new": "New broadcast",
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
    "overview.title": "Overview",
    "tile.pending": "Pending",
    "tile.pending.hint": "queued or being sent",
    "tile.sent_5m": "Sent",
    "tile.failed_5m": "Failed",
    "tile.last_5m": "last 5 minutes",
    "tile.active": "Active broadcasts",
    "tile.active.hint": "queued, running or paused",
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
        "A phone column (lead_id and name are optional), or phone numbers in the first column."
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
    "error.csv_encoding": "The CSV file must be UTF-8 text.",
    "error.csv_too_large": "The CSV file is larger than {mb} MB.",
    "error.key_mismatch": (
        "This form was already used for a different broadcast. It has been renewed: "
        "check it and send again."
    ),
    "error.key_in_use": (
        "This form is still being sent. It will appear in the broadcasts list in a moment."
    ),
    "error.other": "The broadcast was not sent: {message}",
    "errorpage.title": "Something went wrong",
    "errorpage.403": (
        "This form has expired or did not come from this dashboard. Reload the page and try again."
    ),
    "errorpage.404": "Not found: there is no such page or broadcast, or it is not yours.",
    "errorpage.409": "That cannot be done now: {message}",
    "errorpage.422": "The address has a value this page does not understand ({message}).",
    "errorpage.400": "The request could not be read ({message}).",
    "errorpage.other": "The server could not do that ({message}).",
    "errorpage.500": "The server failed to show this page. The error was logged; try again.",
    "errorpage.back": "Back to the overview",
}

HE: dict[str, str] = {
    "brand": "wabroadcast",
    "skip": "דילוג לתוכן",
    "nav.overview": "תפוצות",
    "nav.new": "תפוצה חדשה",
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
    "overview.title": "סקירה",
    "tile.pending": "ממתינות",
    "tile.pending.hint": "בתור או בשליחה",
    "tile.sent_5m": "נשלחו",
    "tile.failed_5m": "נכשלו",
    "tile.last_5m": "ב־5 הדקות האחרונות",
    "tile.active": "תפוצות פעילות",
    "tile.active.hint": "בתור, בשליחה או מושהות",
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
    "new.csv_help": "עמודת phone (העמודות lead_id ו־name רשות), או מספרי טלפון בעמודה הראשונה.",
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
    "error.csv_encoding": "קובץ ה־CSV חייב להיות טקסט בקידוד UTF-8.",
    "error.csv_too_large": "קובץ ה־CSV גדול מ־{mb} MB.",
    "error.key_mismatch": "הטופס הזה כבר שימש לתפוצה אחרת. הוא חודש: בדקו אותו ושלחו שוב.",
    "error.key_in_use": "הטופס הזה עדיין נשלח. התפוצה תופיע ברשימת התפוצות בעוד רגע.",
    "error.other": "התפוצה לא נשלחה: {message}",
    "errorpage.title": "משהו השתבש",
    "errorpage.403": "הטופס פג תוקף או שלא נשלח מלוח הבקרה הזה. טענו מחדש את הדף ונסו שוב.",
    "errorpage.404": "לא נמצא: אין דף או תפוצה כאלה, או שאינם שלכם.",
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


def language_of(request: Request) -> Language:
    """The language the visitor chose (cookie), else the first their browser prefers."""
    chosen = request.cookies.get(LANGUAGE_COOKIE)
    if chosen == "he":
        return "he"
    if chosen == "en":
        return "en"
    accepted = request.headers.get("accept-language", "")
    first = accepted.split(",", 1)[0].split(";", 1)[0].strip().lower()
    return "he" if first.split("-", 1)[0] in {"he", "iw"} else "en"
