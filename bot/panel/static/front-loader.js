/* ChargeDesk agent panel, Front: this page is the plugin URL Front knows, so Front's plugin
   SDK keeps sending it the teammate's context. For each conversation the teammate opens,
   the frame below loads the panel's signed entry with that context and the plugin's own
   auth_secret (from this page's address, where Front put it); the panel checks both. */
(function () {
  "use strict";
  var page = document.getElementById("front-plugin");
  var frame = document.getElementById("plugin-panel");
  var status = document.getElementById("plugin-status");
  if (!page || !frame || !status) {
    return;
  }
  var say = function (text) {
    frame.hidden = true;
    frame.removeAttribute("src");
    status.textContent = text;
    status.hidden = false;
  };
  var secret = new URLSearchParams(window.location.search).get("auth_secret");
  if (!window.Front || !window.Front.contextUpdates || !secret) {
    say(page.getAttribute("data-failed"));
    return;
  }
  var shown = null;
  window.Front.contextUpdates.subscribe(function (context) {
    var conversation = context && context.type === "singleConversation" && context.conversation;
    var teammate = context && context.teammate;
    if (!conversation || !teammate || !teammate.email) {
      shown = null;
      say(page.getAttribute("data-pick"));
      return;
    }
    var recipient = conversation.recipient || {};
    var contact = recipient.type === "email" && recipient.handle ? recipient.handle : "";
    var key = [teammate.email, conversation.id, contact].join("\n");
    if (key === shown) {
      return; // the same conversation, changed otherwise (a tag, an assignee): nothing to redo
    }
    shown = key;
    var query = new URLSearchParams({
      auth_secret: secret,
      teammate: teammate.email,
      teammate_name: teammate.name || "",
      conversation: conversation.id || "",
      contact: contact
    });
    frame.src = page.getAttribute("data-entry-url") + "?" + query.toString();
    frame.hidden = false;
    status.hidden = true;
  });
})();
