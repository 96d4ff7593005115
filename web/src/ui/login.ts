// Sign up / log in screen. One form, two modes; Enter submits; errors in words.
import { describeError } from "../api/errors";
import { h } from "../dom";
import type { Ctx } from "./context";

export function loginScreen(ctx: Ctx, message: string | null): HTMLElement {
  let mode: "login" | "signup" = "login";

  const email = h("input", {
    id: "auth-email", name: "email", type: "email", autocomplete: "username",
    required: true, maxlength: 254, testid: "auth-email", placeholder: "you@example.com",
  });
  const password = h("input", {
    id: "auth-password", name: "password", type: "password", autocomplete: "current-password",
    required: true, maxlength: 128, testid: "auth-password",
  });
  const hint = h("p", { class: "field-hint", id: "auth-password-hint", hidden: true },
    "10 to 128 characters, with at least one letter and one digit.");
  const error = h("div", { class: "form-error", role: "alert", testid: "auth-error" }, message ?? "");
  const submit = h("button", { type: "submit", class: "btn btn-primary btn-block", testid: "auth-submit" }, "Log in");
  const tabLogin = h("button", { type: "button", role: "tab", class: "tab", testid: "auth-tab-login" }, "Log in");
  const tabSignup = h("button", { type: "button", role: "tab", class: "tab", testid: "auth-tab-signup" }, "Sign up");

  const setMode = (m: "login" | "signup"): void => {
    mode = m;
    tabLogin.setAttribute("aria-selected", String(m === "login"));
    tabSignup.setAttribute("aria-selected", String(m === "signup"));
    submit.textContent = m === "login" ? "Log in" : "Create account";
    password.autocomplete = m === "login" ? "current-password" : "new-password";
    hint.hidden = m === "login";
    error.textContent = "";
    email.focus();
  };
  tabLogin.addEventListener("click", () => setMode("login"));
  tabSignup.addEventListener("click", () => setMode("signup"));

  const form = h("form", { class: "auth-form", testid: "auth-form", novalidate: true },
    h("label", { for: "auth-email" }, "Email"), email,
    h("label", { for: "auth-password" }, "Password"), password, hint,
    error, submit);

  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const addr = email.value.trim();
    const pass = password.value;
    if (!addr || !addr.includes("@")) {
      error.textContent = "Enter your email address.";
      email.focus();
      return;
    }
    if (!pass) {
      error.textContent = "Enter your password.";
      password.focus();
      return;
    }
    if (mode === "signup" && (pass.length < 10 || !/[A-Za-z]/.test(pass) || !/\d/.test(pass))) {
      error.textContent = "Password must be 10 to 128 characters and contain a letter and a digit.";
      password.focus();
      return;
    }
    error.textContent = "";
    submit.disabled = true;
    submit.textContent = mode === "login" ? "Logging in…" : "Creating account…";
    try {
      if (mode === "signup") {
        const res = await ctx.clients.auth.register({ email: addr, password: pass });
        if (!res.tokens) throw new Error("The server sent no session.");
        ctx.session.begin(res.user?.email ?? addr, res.tokens);
      } else {
        const res = await ctx.clients.auth.login({ email: addr, password: pass });
        ctx.session.begin(addr.toLowerCase(), res);
      }
    } catch (e) {
      error.textContent = describeError(e);
      submit.disabled = false;
      submit.textContent = mode === "login" ? "Log in" : "Create account";
      password.select();
    }
  });

  const screen = h("div", { class: "auth-screen", testid: "auth-screen" },
    h("div", { class: "auth-card" },
      h("div", { class: "brand brand-lg" }, h("span", { class: "brand-mark" }, "exness"), h("span", { class: "brand-sub" }, "terminal")),
      h("p", { class: "auth-lead" }, "Trade crypto, forex and metals with live prices."),
      h("div", { class: "tabs", role: "tablist" }, tabLogin, tabSignup),
      form));
  setMode("login");
  error.textContent = message ?? "";
  queueMicrotask(() => email.focus());
  return screen;
}
