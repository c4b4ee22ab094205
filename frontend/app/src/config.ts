/** Where the backend is: the page's own origin (the backend serves this app at `/`). */
export const BACKEND_URL: string = (
  (import.meta.env.VITE_BACKEND_URL as string | undefined) || window.location.origin
).replace(/\/+$/, "");

/** The server's default MAX_MESSAGE_LENGTH; the client checks it before sending. */
export const MAX_MESSAGE_LENGTH = Number(import.meta.env.VITE_MAX_MESSAGE_LENGTH ?? 8000);

/**
 * Whether requests carry the sign-in cookie: always to our own origin; to a backend on
 * another origin only with "include" (it must then list this origin in CORS_ORIGINS).
 */
export const CREDENTIALS: RequestCredentials =
  new URL(BACKEND_URL).origin === window.location.origin ? "same-origin" : "include";
