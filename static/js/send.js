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
