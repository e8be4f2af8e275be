// The send pages: one click sends once, and the "send anyway" box says how many will go.
(function () {
  "use strict";

  // A second click while the first request is on its way would only find the same batch
  // (the form carries an idempotency key), but a disabled button says so plainly.
  document.querySelectorAll("form[data-once]").forEach(function (form) {
    form.addEventListener("submit", function () {
      window.setTimeout(function () {
        form.querySelectorAll("button[type=submit]").forEach(function (button) {
          button.disabled = true;
        });
      }, 0);
    });
  });

  var anyway = document.getElementById("send-anyway");
  var count = document.getElementById("send-count");
  var confirm = document.getElementById("confirm-send");
  if (anyway && count && confirm) {
    var update = function () {
      var n = anyway.checked ? anyway.dataset.with : anyway.dataset.without;
      count.textContent = n;
      var rows = document.getElementById("send-rows");
      if (rows) rows.textContent = Number(n) === 1 ? "row" : "rows";
      confirm.disabled = Number(n) === 0;
    };
    anyway.addEventListener("change", update);
    update();
  }
})();

// The one-reward form asks for an address or for our recipient ID, as the mode says.
(function () {
  "use strict";

  var recipient = document.getElementById("id_one-recipient");
  if (!recipient) return;
  var label = document.querySelector('label[for="id_one-recipient"]');
  var radios = document.querySelectorAll("input[name=one-mode]");
  var update = function () {
    var checked = document.querySelector("input[name=one-mode]:checked");
    var byId = checked && checked.value === "link-id";
    if (label) label.textContent = byId ? "Recipient ID" : "Email address";
    recipient.type = byId ? "text" : "email";
    recipient.placeholder = byId ? "user1234" : "sally@example.com";
  };
  radios.forEach(function (radio) { radio.addEventListener("change", update); });
  update();
})();
