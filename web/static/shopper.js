// The pending state of the shopper pages' forms ("Buy now", "Top up and
// pay"): the tapped button says "Paying…" and further taps wait for the
// first. Progressive enhancement only: without this script the forms post
// as they are, and the server pays once per form whatever arrives.
(function () {
  "use strict";
  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (!form.hasAttribute("data-pending")) {
      return;
    }
    if (form.getAttribute("aria-busy") === "true") {
      event.preventDefault(); // a second tap: the first is on its way
      return;
    }
    form.setAttribute("aria-busy", "true");
    var button = event.submitter || form.querySelector("button[type=submit]");
    if (!button) {
      return;
    }
    // aria-disabled, not disabled: a disabled button would drop its own
    // name and value from the form being sent.
    button.setAttribute("data-idle-text", button.textContent);
    button.setAttribute("aria-disabled", "true");
    button.textContent = button.getAttribute("data-pending-text") || button.textContent;
  });
  // Back from the next page, the browser may show this page as it was left:
  // make its forms usable again.
  window.addEventListener("pageshow", function (event) {
    if (!event.persisted) {
      return;
    }
    document.querySelectorAll("form[aria-busy=true]").forEach(function (form) {
      form.removeAttribute("aria-busy");
      form.querySelectorAll("button[data-idle-text]").forEach(function (button) {
        button.textContent = button.getAttribute("data-idle-text");
        button.removeAttribute("aria-disabled");
      });
    });
  });
})();
