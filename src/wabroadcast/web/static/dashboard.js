// wabroadcast dashboard: live refresh, local times, and a form that cannot be sent twice.
// Plain JavaScript, no build step; every page also works without it.
(function () {
  "use strict";

  var LIVE_HEADER = "X-Live-Refresh";
  var FRAGMENT_HEADER = "X-Fragment";

  // Times arrive in UTC (readable without JavaScript); show them in the visitor's zone,
  // compactly: the time alone when the day is today's, or the same as the time shown just
  // before it in a group of times (a recipient's queued, sent, delivered...).
  function localizeTimes(root) {
    var lang = document.documentElement.lang || "en";
    var full, timeOnly, dayOf;
    try {
      full = new Intl.DateTimeFormat(lang, { dateStyle: "medium", timeStyle: "medium" });
      timeOnly = new Intl.DateTimeFormat(lang, { timeStyle: "medium" });
      dayOf = new Intl.DateTimeFormat("en-CA", { year: "numeric", month: "2-digit", day: "2-digit" });
    } catch (error) {
      return;
    }
    var today = dayOf.format(new Date());
    function momentOf(element) {
      var moment = new Date(element.getAttribute("datetime"));
      return isNaN(moment.getTime()) ? null : moment;
    }
    root.querySelectorAll("time[datetime]").forEach(function (element) {
      var moment = momentOf(element);
      if (!moment) {
        return;
      }
      var day = dayOf.format(moment);
      var sameDay = day === today;
      var group = element.closest("[data-time-group]");
      if (group && !sameDay) {
        var times = Array.prototype.slice.call(group.querySelectorAll("time[datetime]"));
        var before = times.indexOf(element) > 0 ? momentOf(times[times.indexOf(element) - 1]) : null;
        sameDay = before !== null && dayOf.format(before) === day;
      }
      element.title = full.format(moment);
      element.textContent = (sameDay ? timeOnly : full).format(moment);
    });
  }

  // A status filter that applies itself when another status is chosen (its button is
  // only there, in <noscript>, for browsers without JavaScript).
  function setUpAutoSubmit(root) {
    root.querySelectorAll("form[data-auto-submit] select").forEach(function (select) {
      select.addEventListener("change", function () {
        if (select.form.requestSubmit) {
          select.form.requestSubmit();
        } else {
          select.form.submit();
        }
      });
    });
  }

  function offsetText(minutes) {
    var sign = minutes < 0 ? "\u2212" : "+";
    var whole = Math.abs(minutes);
    var hours = String(Math.floor(whole / 60)).padStart(2, "0");
    return "UTC" + sign + hours + ":" + String(whole % 60).padStart(2, "0");
  }

  // The schedule field is a local date-time: send the browser's offset from UTC for that
  // date with it (without JavaScript the server reads it as UTC, as the page says).
  function setUpSchedule(form) {
    var input = form.querySelector("input[data-offset-field]");
    if (!input) {
      return;
    }
    var name = input.dataset.offsetField;
    function offsetFor(value) {
      var local = value ? new Date(value) : null;
      return local && !isNaN(local.getTime()) ? String(-local.getTimezoneOffset()) : "";
    }
    form.addEventListener("formdata", function (event) {
      event.formData.set(name, offsetFor(input.value));
    });
    var note = form.querySelector("[data-zone-note]");
    if (note && note.dataset.localText) {
      var zone = "";
      try {
        zone = Intl.DateTimeFormat().resolvedOptions().timeZone || "";
      } catch (error) {
        zone = "";
      }
      var offset = offsetText(-new Date().getTimezoneOffset());
      // Isolated, so a Latin zone name keeps a Hebrew sentence's full stop at its end.
      var named = zone ? zone + " (" + offset + ")" : offset;
      note.textContent = note.dataset.localText.replace("{zone}", "\u2068" + named + "\u2069");
    }
  }

  // Something inside a region that is about to be replaced, found again by what it points at.
  function focusKey(element) {
    if (!element || element === document.body) {
      return null;
    }
    return element.id ? "#" + CSS.escape(element.id)
      : element.getAttribute("href") ? '[href="' + CSS.escape(element.getAttribute("href")) + '"]'
      : null;
  }

  function startLiveRefresh(intervalMs, address) {
    // What the server last sent for each region, before times were localized in it.
    var lastHtml = {};
    document.querySelectorAll("[data-live][id]").forEach(function (region) {
      lastHtml[region.id] = region.outerHTML;
    });
    var staleNote = document.getElementById("live-status");
    // A polite status line for what a changed region says (the phone got linked, say).
    var announcer = document.getElementById("live-announcer");
    var announced = {};
    document.querySelectorAll("[data-live][id][data-announce]").forEach(function (region) {
      announced[region.id] = region.dataset.announce;
    });
    var busy = false;

    function apply(html) {
      var fresh = new DOMParser().parseFromString(html, "text/html");
      fresh.querySelectorAll("[data-live][id]").forEach(function (incoming) {
        var current = document.getElementById(incoming.id);
        if (!current || lastHtml[incoming.id] === incoming.outerHTML) {
          return;
        }
        var active = document.activeElement;
        var key = current.contains(active) ? focusKey(active) : null;
        // A confirmation box ticked a moment ago stays ticked in the fresh region.
        var ticked = Array.prototype.map.call(
          current.querySelectorAll("input[type=checkbox][id]:checked"),
          function (box) { return box.id; }
        );
        lastHtml[incoming.id] = incoming.outerHTML;
        var replacement = document.importNode(incoming, true);
        current.replaceWith(replacement);
        ticked.forEach(function (id) {
          var box = replacement.querySelector("#" + CSS.escape(id));
          if (box) {
            box.checked = true;
          }
        });
        localizeTimes(replacement);
        replacement.querySelectorAll("form[data-submit-once]").forEach(setUpSubmitOnce);
        var news = replacement.dataset.announce;
        if (announcer && news && news !== announced[replacement.id]) {
          announced[replacement.id] = news;
          announcer.textContent = news;
        }
        if (key) {
          var again = replacement.querySelector(key);
          if (again) {
            again.focus();
          }
        }
      });
    }

    function tick() {
      if (busy || document.hidden) {
        return;
      }
      busy = true;
      fetch(address, {
        headers: { [LIVE_HEADER]: "1" },
        credentials: "same-origin",
        cache: "no-store",
      })
        .then(function (response) {
          if (response.status === 401) {
            window.location.reload();
            return null;
          }
          if (!response.ok) {
            throw new Error("HTTP " + response.status);
          }
          return response.text();
        })
        .then(function (html) {
          if (html !== null) {
            apply(html);
          }
          if (staleNote) {
            staleNote.hidden = true;
          }
        })
        .catch(function () {
          if (staleNote) {
            staleNote.hidden = false;
          }
        })
        .finally(function () {
          busy = false;
        });
    }

    window.setInterval(tick, intervalMs);
    document.addEventListener("visibilitychange", function () {
      if (!document.hidden) {
        tick();
      }
    });
  }

  function setBusy(button, busy) {
    if (!button) {
      return;
    }
    if (busy) {
      button.dataset.idleText = button.textContent;
      button.textContent = button.dataset.busyText || button.textContent;
      button.disabled = true;
      button.setAttribute("aria-busy", "true");
    } else {
      if (button.dataset.idleText) {
        button.textContent = button.dataset.idleText;
      }
      button.disabled = false;
      button.removeAttribute("aria-busy");
    }
  }

  function setUpBroadcastForm(form) {
    var sendButton = form.querySelector("#send-button");
    var previewButton = form.querySelector("#preview-button");
    var previewRegion = document.getElementById("preview");
    var message = form.querySelector("#message");
    var counter = form.querySelector("[data-char-count]");

    // One submission per rendered form: the server would answer a second one with the
    // first one's broadcast anyway (same Idempotency-Key); this spares the round trip.
    form.addEventListener("submit", function (event) {
      if (event.submitter === previewButton) {
        return;
      }
      if (form.dataset.submitted === "true") {
        event.preventDefault();
        return;
      }
      form.dataset.submitted = "true";
      setBusy(sendButton, true);
      previewButton.disabled = true;
    });

    // Back from the result page, a cached form must be usable again.
    window.addEventListener("pageshow", function () {
      form.dataset.submitted = "";
      setBusy(sendButton, false);
      previewButton.disabled = false;
    });

    previewButton.addEventListener("click", function (event) {
      event.preventDefault();
      setBusy(previewButton, true);
      fetch(form.dataset.previewUrl, {
        method: "POST",
        body: new FormData(form),
        headers: { [FRAGMENT_HEADER]: "1" },
        credentials: "same-origin",
      })
        .then(function (response) {
          if (response.status === 401) {
            window.location.reload();
            return null;
          }
          return response.text();
        })
        .then(function (html) {
          if (html !== null) {
            previewRegion.innerHTML = html;
          }
        })
        .catch(function () {
          previewRegion.textContent = "";
        })
        .finally(function () {
          setBusy(previewButton, false);
        });
    });

    function countCharacters() {
      counter.textContent = message.value.length + " / " + message.getAttribute("maxlength");
    }
    if (message && counter) {
      message.addEventListener("input", countCharacters);
      countCharacters();
    }
  }

  // A text to paste elsewhere (a webhook URL): the button copies it, or selects it to copy.
  function selectText(element) {
    var range = document.createRange();
    range.selectNodeContents(element);
    var selection = window.getSelection();
    selection.removeAllRanges();
    selection.addRange(range);
  }

  function setUpCopyButtons(root) {
    root.querySelectorAll("button[data-copy]").forEach(function (button) {
      var source = document.getElementById(button.dataset.copy);
      if (!source) {
        return;
      }
      var idleText = button.textContent;
      var timer = null;
      function copied() {
        button.textContent = button.dataset.copiedText || idleText;
        window.clearTimeout(timer);
        timer = window.setTimeout(function () {
          button.textContent = idleText;
        }, 2000);
      }
      function fallback() {
        selectText(source);
        try {
          if (document.execCommand("copy")) {
            copied();
          }
        } catch (error) {
          // Selected: the visitor copies it with the keyboard.
        }
      }
      button.hidden = false;
      button.setAttribute("aria-live", "polite");
      button.addEventListener("click", function () {
        var text = source.textContent.trim();
        if (navigator.clipboard && window.isSecureContext) {
          navigator.clipboard.writeText(text).then(copied, fallback);
        } else {
          fallback();
        }
      });
    });
  }

  // A form that must not be posted twice by a double click (it would add two sessions).
  function setUpSubmitOnce(form) {
    var button = form.querySelector("button[type=submit][data-busy-text]");
    form.addEventListener("submit", function (event) {
      if (form.dataset.submitted === "true") {
        event.preventDefault();
        return;
      }
      form.dataset.submitted = "true";
      setBusy(button, true);
    });
    window.addEventListener("pageshow", function () {
      form.dataset.submitted = "";
      setBusy(button, false);
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    localizeTimes(document);
    var interval = Number(document.body.dataset.liveRefreshMs);
    if (interval > 0) {
      startLiveRefresh(interval, document.body.dataset.liveUrl || window.location.href);
    }
    var form = document.getElementById("new-broadcast");
    if (form) {
      setUpBroadcastForm(form);
      setUpSchedule(form);
    }
    setUpAutoSubmit(document);
    setUpCopyButtons(document);
    document.querySelectorAll("form[data-submit-once]").forEach(setUpSubmitOnce);
  });
})();
