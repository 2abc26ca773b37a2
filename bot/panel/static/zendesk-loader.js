/* ChargeDesk agent panel, Zendesk: ask the app framework which ticket this sidebar is on,
   then go to the panel's ticket address. Only the ticket number leaves this page: the
   server reads the ticket and its requester from Zendesk's API itself. Runs after Zendesk's
   ZAF SDK (both `defer`); without it, or without an answer, the page keeps its search link. */
(function () {
  "use strict";
  var page = document.getElementById("zendesk-loader");
  var status = document.getElementById("loader-status");
  if (!page || !status) {
    return;
  }
  var failed = function () {
    status.textContent = page.getAttribute("data-failed");
  };
  var client = window.ZAFClient ? window.ZAFClient.init() : null;
  if (!client) {
    failed();
    return;
  }
  var waiting = window.setTimeout(failed, 10000);
  client.get("ticket.id").then(
    function (data) {
      var ticket = String(data && data["ticket.id"]);
      window.clearTimeout(waiting);
      if (!/^[0-9]{1,20}$/.test(ticket)) {
        failed();
        return;
      }
      window.location.replace(page.getAttribute("data-ticket-url") + ticket);
    },
    function () {
      window.clearTimeout(waiting);
      failed();
    }
  );
})();
