// Small behaviour of the sending and batch pages; what they show is rendered by the server
// (the live parts are template partials that htmx fetches again). Listeners sit on the
// document, so they also serve the parts htmx swaps in.
(function () {
  "use strict";

  // A form that asks first (Cancel a batch, decide rows of unknown outcome).
  document.addEventListener("submit", function (event) {
    var form = event.target.closest("form[data-confirm]");
    if (form && !window.confirm(form.dataset.confirm)) event.preventDefault();
  }, true);

  // One click sends once: a second click while the first request is on its way would only
  // find the same batch (the form carries an idempotency key), but a disabled button says so.
  document.addEventListener("submit", function (event) {
    var form = event.target.closest("form[data-once]");
    if (!form || event.defaultPrevented) return;
    window.setTimeout(function () {
      form.querySelectorAll("button[type=submit]").forEach(function (button) {
        button.disabled = true;
      });
    }, 0);
  });

  // The preview's "send anyway" box says how many rows will go.
  var anyway = document.getElementById("send-anyway");
  var count = document.getElementById("send-count");
  var confirmButton = document.getElementById("confirm-send");
  if (anyway && count && confirmButton) {
    var update = function () {
      var n = anyway.checked ? anyway.dataset.with : anyway.dataset.without;
      count.textContent = n;
      var rows = document.getElementById("send-rows");
      if (rows) rows.textContent = Number(n) === 1 ? "row" : "rows";
      confirmButton.disabled = Number(n) === 0;
    };
    anyway.addEventListener("change", update);
    update();
  }

  // The one-reward form asks for an address or for our recipient ID, as the mode says.
  var recipient = document.getElementById("id_one-recipient");
  if (recipient) {
    var label = document.querySelector('label[for="id_one-recipient"]');
    var modeChanged = function () {
      var checked = document.querySelector("input[name=one-mode]:checked");
      var byId = checked && checked.value === "link-id";
      if (label) label.textContent = byId ? "Recipient ID" : "Email address";
      recipient.type = byId ? "text" : "email";
      recipient.placeholder = byId ? "user1234" : "sally@example.com";
    };
    document.querySelectorAll("input[name=one-mode]").forEach(function (radio) {
      radio.addEventListener("change", modeChanged);
    });
    modeChanged();
  }
})();
