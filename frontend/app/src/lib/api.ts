/**
 * The app's ChatClient: sign-in and the list of conversations. The server's own origin
 * by default, so its HttpOnly cookie carries the sign-in; on another origin
 * (VITE_BACKEND_URL) the cookie has to be sent cross-site.
 */
import { ChatClient } from "@chatbot/client";
import { BACKEND_URL, CREDENTIALS } from "../config";

export const api = new ChatClient({ backendUrl: BACKEND_URL, credentials: CREDENTIALS });

