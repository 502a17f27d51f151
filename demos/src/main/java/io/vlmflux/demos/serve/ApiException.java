package io.vlmflux.demos.serve;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;

/**
 * A request the server answers with an error: the HTTP status and OpenAI's error object
 * {@code {"error": {"message", "type", "param", "code"}}}. Owns the mapping from a failure to what the client sees.
 */
final class ApiException extends RuntimeException {
    final int status;
    final String type, param, code;

    ApiException(int status, String type, String message, String param, String code) {
        super(message);
        this.status = status;
        this.type = type;
        this.param = param;
        this.code = code;
    }

    /** 400 for a malformed or invalid request field ({@code param} names it, null when the whole body is at fault). */
    static ApiException invalid(String param, String message) {
        return new ApiException(400, "invalid_request_error", message, param, param == null ? null : "invalid_value");
    }

    static ApiException notFound(String message, String param, String code) {
        return new ApiException(404, "invalid_request_error", message, param, code);
    }

    ObjectNode body(ObjectMapper json) {
        ObjectNode root = json.createObjectNode();
        ObjectNode e = root.putObject("error");
        e.put("message", getMessage());
        e.put("type", type);
        e.put("param", param);
        e.put("code", code);
        return root;
    }
}
