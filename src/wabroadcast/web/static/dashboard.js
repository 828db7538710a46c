// wabroadcast dashboard: live refresh, local times, and a form that cannot be sent twice.
// Plain JavaScript, no build step; every page also works without it.
(function () {
  "use strict";

  var LIVE_HEADER = "X-Live-Refresh";
  var FRAGMENT_HEADER = "X-Fragment";

  // Times arrive in UTC (readable without JavaScript); show them in the visitor's zone.
  function localizeTimes(root) {
    var lang = document.documentElement.lang || "en";
    var format;
    try {
      format = new Intl.DateTimeFormat(lang, { dateStyle: "medium", timeStyle: "medium" });
    } catch (error) {
      return;
    }
    root.querySelectorAll("time[datetime]").forEach(function (element) {
      var moment = new Date(element.getAttribute("datetime"));
      if (!isNaN(moment.getTime())) {
        element.title = element.getAttribute("datetime");
        element.textContent = format.format(moment);
      }
    });
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
        lastHtml[incoming.id] = incoming.outerHTML;
        var replacement = document.importNode(incoming, true);
        current.replaceWith(replacement);
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
    }
    setUpCopyButtons(document);
    document.querySelectorAll("form[data-submit-once]").forEach(setUpSubmitOnce);
  });
})();
