/* engine/lifecycle/card.c: model cards, in Markdown and in HTML with inline
 * SVG.
 *
 * One walk over struct kiln_card_input writes either format through a small
 * emitter (headings, paragraphs, tables, code), so the two carry the same
 * content; the HTML adds the training curves and the confusion matrix as
 * inline SVG drawn here. The card is streamed into a temp file beside the
 * target and published by rename, so a reader never sees half a card.
 *
 * Text from the input is escaped in both formats: for HTML every & < > " '
 * (the file also forbids scripts in its Content-Security-Policy); for
 * Markdown < and & (so no raw HTML reaches a renderer), and | and line
 * breaks inside tables. Numbers that are NaN or infinite print as a dash and
 * are left out of the charts.
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/util.h"
#include "kiln/card.h"

#ifndef KILN_VERSION
#define KILN_VERSION "unknown"
#endif

#define NOT_STATED "Not stated in the training config."
#define DASH "\xe2\x80\x94"     /* an absent or non-finite value */
#define ELLIPSIS "\xe2\x80\xa6"
#define FEATURES_SHOWN 10       /* rows of the feature table; the rest are summarised */
#define LABEL_CHARS 16          /* class names in SVG labels, in code points */

/* --- output and escaping ---------------------------------------------------------- */

struct out {
    FILE *f;
    bool html;
};

static void put(struct out *o, const char *s) { fputs(s, o->f); }

static void putf(struct out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void putf(struct out *o, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vfprintf(o->f, fmt, ap);
    va_end(ap);
}

enum esc_mode { ESC_TEXT, ESC_CELL };

/* Writes len bytes of s escaped for the output format. Control characters
 * other than tab and newline are dropped: HTML forbids them and they mean
 * nothing on a card. */
static void put_esc_n(struct out *o, const char *s, size_t len, enum esc_mode mode)
{
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if ((c < 0x20 && c != '\n' && c != '\t') || c == 0x7f) continue;
        if (o->html) {
            switch (c) {
            case '&': put(o, "&amp;"); continue;
            case '<': put(o, "&lt;"); continue;
            case '>': put(o, "&gt;"); continue;
            case '"': put(o, "&quot;"); continue;
            case '\'': put(o, "&#39;"); continue;
            default: break;
            }
        } else {
            if (mode == ESC_CELL && c == '\n') {
                fputc(' ', o->f);
                continue;
            }
            if (c == '<' || c == '&' || (mode == ESC_CELL && c == '|')) fputc('\\', o->f);
        }
        fputc(c, o->f);
    }
}

static void put_text(struct out *o, const char *s)
{
    if (s) put_esc_n(o, s, strlen(s), ESC_TEXT);
}

/* Text inside a line (headings, names in a sentence): in Markdown a line
 * break would end the heading, so it becomes a space. */
static void put_inline(struct out *o, const char *s)
{
    if (s) put_esc_n(o, s, strlen(s), ESC_CELL);
}

/* Length of s without trailing white space (block scalars end in "\n"). */
static size_t trimmed_len(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\n' || s[n - 1] == '\t' || s[n - 1] == '\r'))
        n--;
    return n;
}

static bool is_given(const char *s) { return trimmed_len(s) > 0; }

/* Inline code: <code> in HTML; in Markdown a backtick span one longer than
 * any run of backticks inside (code spans take no backslash escapes, except
 * \| inside a table). */
static void put_code(struct out *o, const char *s, enum esc_mode mode)
{
    if (!s) s = "";
    if (o->html) {
        put(o, "<code>");
        put_esc_n(o, s, strlen(s), mode);
        put(o, "</code>");
        return;
    }
    int run = 0, longest = 0;
    for (const char *p = s; *p; p++) {
        run = *p == '`' ? run + 1 : 0;
        if (run > longest) longest = run;
    }
    bool pad = s[0] == '`' || (s[0] && s[strlen(s) - 1] == '`');
    for (int i = 0; i <= longest; i++) fputc('`', o->f);
    if (pad) fputc(' ', o->f);
    for (const char *p = s; *p; p++) {
        unsigned char c = (unsigned char)*p;
        if ((c < 0x20 && c != '\t') || c == 0x7f) {
            fputc(' ', o->f);
            continue;
        }
        if (mode == ESC_CELL && c == '|') fputc('\\', o->f);
        fputc(c, o->f);
    }
    if (pad) fputc(' ', o->f);
    for (int i = 0; i <= longest; i++) fputc('`', o->f);
}

/* --- numbers ------------------------------------------------------------------------ */

/* Fixed decimals, or a dash when v is not finite. */
static const char *fmt_fixed(char buf[48], double v, int decimals)
{
    if (!isfinite(v)) return DASH;
    snprintf(buf, 48, "%.*f", decimals, v);
    return buf;
}

/* Four significant digits, or a dash. */
static const char *fmt_sig(char buf[48], double v)
{
    if (!isfinite(v)) return DASH;
    snprintf(buf, 48, "%.4g", v == 0 ? 0.0 : v); /* no "-0" */
    return buf;
}

static const char *fmt_i64(char buf[48], int64_t v)
{
    snprintf(buf, 48, "%" PRId64, v);
    return buf;
}

/* --- the emitter ------------------------------------------------------------------------ */

static void heading_open(struct out *o, int level)
{
    if (o->html) {
        putf(o, "<h%d>", level);
    } else {
        for (int i = 0; i < level; i++) fputc('#', o->f);
        fputc(' ', o->f);
    }
}

static void heading_close(struct out *o, int level)
{
    if (o->html)
        putf(o, "</h%d>\n", level);
    else
        put(o, "\n\n");
}

static void heading(struct out *o, int level, const char *text)
{
    heading_open(o, level);
    put_inline(o, text);
    heading_close(o, level);
}

static void para_open(struct out *o) { put(o, o->html ? "<p>" : ""); }
static void para_close(struct out *o) { put(o, o->html ? "</p>\n" : "\n\n"); }

/* A paragraph of the user's text, line breaks kept (CSS pre-line in HTML;
 * Markdown renders them as it does any text). */
static void para_user(struct out *o, const char *text)
{
    put(o, o->html ? "<p class=\"text\">" : "");
    put_esc_n(o, text, trimmed_len(text), ESC_TEXT);
    para_close(o);
}

/* A note in italics: "Not stated ...", "No epochs recorded." */
static void para_note(struct out *o, const char *text)
{
    put(o, o->html ? "<p class=\"note\">" : "*");
    put_text(o, text);
    put(o, o->html ? "</p>\n" : "*\n\n");
}

/* A card field from the config, or the note that it is absent. */
static void para_stated(struct out *o, const char *text)
{
    if (is_given(text))
        para_user(o, text);
    else
        para_note(o, NOT_STATED);
}

enum { COL_NUM = 1, COL_CODE = 2 };

static void table_begin(struct out *o, int n, const char *const *heads, const unsigned *flags)
{
    if (o->html) {
        put(o, "<div class=\"wide\"><table>\n<thead><tr>");
        for (int i = 0; i < n; i++) {
            put(o, flags[i] & COL_NUM ? "<th class=\"num\">" : "<th>");
            put_text(o, heads[i]);
            put(o, "</th>");
        }
        put(o, "</tr></thead>\n<tbody>\n");
        return;
    }
    put(o, "|");
    for (int i = 0; i < n; i++) {
        put(o, " ");
        put_esc_n(o, heads[i], strlen(heads[i]), ESC_CELL);
        put(o, " |");
    }
    put(o, "\n|");
    for (int i = 0; i < n; i++) put(o, flags[i] & COL_NUM ? "---:|" : "---|");
    put(o, "\n");
}

static void row_begin(struct out *o) { put(o, o->html ? "<tr>" : "|"); }
static void row_end(struct out *o) { put(o, o->html ? "</tr>\n" : "\n"); }

static void cell(struct out *o, unsigned flags, const char *text)
{
    if (!text) text = "";
    if (o->html)
        put(o, flags & COL_NUM ? "<td class=\"num\">" : "<td>");
    else
        put(o, " ");
    if ((flags & COL_CODE) && text[0] && strcmp(text, DASH) != 0)
        put_code(o, text, ESC_CELL);
    else
        put_esc_n(o, text, trimmed_len(text), ESC_CELL);
    put(o, o->html ? "</td>" : " |");
}

static void table_end(struct out *o) { put(o, o->html ? "</tbody></table></div>\n" : "\n"); }

/* A two-column table row: label, value. */
static void kv_row(struct out *o, const char *key, unsigned flags, const char *value)
{
    row_begin(o);
    cell(o, 0, key);
    cell(o, flags, value);
    row_end(o);
}

static const char *or_dash(const char *s) { return is_given(s) ? s : DASH; }

static const char *class_name(const struct kiln_card_input *in, int i, char buf[48])
{
    if (in->classes && i < in->n_classes && in->classes[i] && in->classes[i][0])
        return in->classes[i];
    snprintf(buf, 48, "class %d", i);
    return buf;
}

/* --- SVG: charts ---------------------------------------------------------------------------- */

/* An axis from lo to hi with ticks every step (1, 2 or 5 times a power of
 * ten), labels with decimals digits after the point. */
struct axis {
    double lo, hi, step;
    int decimals;
};

/* Rounds [lo, hi] out to about target ticks. False when the span cannot be
 * charted: not finite, or too narrow for doubles to step through. */
static bool axis_nice(double lo, double hi, int target, struct axis *a)
{
    if (!(hi > lo)) {
        double pad = fabs(lo) > 1e-12 ? fabs(lo) * 0.1 : 1.0;
        lo -= pad;
        hi += pad;
    }
    double span = hi - lo;
    if (!isfinite(span) || !(span > 0)) return false;
    double k = floor(log10(span / target));
    double r = span / target / pow(10, k);
    double nice = r <= 1 ? 1 : r <= 2 ? 2 : r <= 5 ? 5 : 10;
    if (nice == 10) {
        nice = 1;
        k += 1;
    }
    a->step = nice * pow(10, k);
    a->lo = floor(lo / a->step) * a->step;
    a->hi = ceil(hi / a->step) * a->step;
    a->decimals = k >= 0 ? 0 : k < -12 ? 12 : (int)-k;
    return isfinite(a->lo) && isfinite(a->hi) && a->hi > a->lo && a->step > 0 &&
           (a->hi - a->lo) / a->step <= 4.0 * target;
}

struct series {
    const char *label;
    const char *color;
    size_t offset; /* of the double in struct kiln_card_epoch */
};

static double series_at(const struct kiln_card_epoch *e, const struct series *s)
{
    double v;
    memcpy(&v, (const char *)e + s->offset, sizeof v);
    return v;
}

struct plot {
    double left, top, width, height; /* the plot area inside the SVG */
    double x0, x1;                   /* epochs at its left and right edges */
    struct axis y;
};

static double plot_x(const struct plot *p, double epoch)
{
    return p->left + (epoch - p->x0) / (p->x1 - p->x0) * p->width;
}

static double plot_y(const struct plot *p, double v)
{
    return p->top + (1.0 - (v - p->y.lo) / (p->y.hi - p->y.lo)) * p->height;
}

/* A line chart of the series over the epochs: one path per series through
 * its finite values (a missing one is skipped, its neighbours joined), with
 * dots (and their values as tooltips) when there are few epochs, and a
 * legend of the series that have any value.
 * unit: the values are fractions, kept within [0, 1]. Returns false, writing
 * nothing, when no series has a finite value. */
static bool svg_line_chart(struct out *o, const char *title, const char *ylabel,
                           const struct kiln_card_epoch *ep, int n, const struct series *s,
                           int ns, double svg_h, bool unit)
{
    const double svg_w = 720, ml = 64, mr = 20, mt = 34, mb = 46;
    double lo = INFINITY, hi = -INFINITY, emin = INFINITY, emax = -INFINITY;
    bool has[8] = {false};
    KILN_ASSERT(ns <= 8);
    for (int i = 0; i < n; i++) {
        emin = fmin(emin, (double)ep[i].epoch);
        emax = fmax(emax, (double)ep[i].epoch);
        for (int j = 0; j < ns; j++) {
            double v = series_at(&ep[i], &s[j]);
            if (!isfinite(v)) continue;
            has[j] = true;
            lo = fmin(lo, v);
            hi = fmax(hi, v);
        }
    }
    if (!(lo <= hi)) return false;

    struct plot p = {.left = ml, .top = mt, .width = svg_w - ml - mr, .height = svg_h - mt - mb};
    if (!axis_nice(lo, hi, 5, &p.y)) return false;
    if (unit && lo >= 0 && hi <= 1) {
        p.y.lo = fmax(p.y.lo, 0.0);
        p.y.hi = fmin(p.y.hi, 1.0);
        if (!(p.y.hi > p.y.lo)) return false;
    }
    /* Epochs: a lone epoch sits (with its one tick) in the middle of
     * [e - 1, e + 1]. */
    double xstep = 1, xt0 = emin, xt1 = emin;
    p.x0 = emin;
    p.x1 = emax;
    if (emax > emin) {
        struct axis xa;
        if (!axis_nice(emin, emax, 8, &xa)) return false;
        xstep = fmax(1.0, round(xa.step));
        xt0 = ceil(emin / xstep) * xstep;
        xt1 = emax;
    } else {
        p.x0 = emin - 1;
        p.x1 = emin + 1;
    }
    if (!(p.x1 > p.x0)) return false; /* epochs past 2^53 */

    putf(o, "<figure><svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 %.0f %.0f\" "
            "width=\"%.0f\" height=\"%.0f\" role=\"img\"><title>",
         svg_w, svg_h, svg_w, svg_h);
    put_text(o, title);
    put(o, "</title>\n");
    putf(o, "<rect width=\"%.0f\" height=\"%.0f\" fill=\"#ffffff\"/>\n", svg_w, svg_h);

    /* Grid and y ticks. */
    int nyt = (int)floor((p.y.hi - p.y.lo) / p.y.step + 1e-9);
    for (int i = 0; i <= nyt; i++) {
        double v = p.y.lo + i * p.y.step;
        if (fabs(v) < p.y.step * 1e-9) v = 0;
        double y = plot_y(&p, v);
        putf(o, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#e5e8eb\"/>"
                "<text x=\"%.1f\" y=\"%.1f\" dy=\"0.32em\" text-anchor=\"end\" font-size=\"11\" "
                "fill=\"#57606a\">%.*f</text>\n",
             p.left, y, p.left + p.width, y, p.left - 6, y, p.y.decimals, v);
    }
    /* x ticks at whole epochs. */
    int nxt = (int)fmin(floor((xt1 - xt0) / xstep + 1e-9), 16.0);
    for (int i = 0; i <= nxt; i++) {
        double e = xt0 + i * xstep;
        double x = plot_x(&p, e);
        double yb = p.top + p.height;
        putf(o, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#8c959f\"/>"
                "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\" font-size=\"11\" "
                "fill=\"#57606a\">%.0f</text>\n",
             x, yb, x, yb + 4, x, yb + 16, e);
    }
    /* Axes and their labels. */
    putf(o, "<path d=\"M%.1f %.1fV%.1fH%.1f\" fill=\"none\" stroke=\"#8c959f\"/>\n", p.left,
         p.top, p.top + p.height, p.left + p.width);
    putf(o, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\" font-size=\"12\" "
            "fill=\"#1d2430\">epoch</text>\n",
         p.left + p.width / 2, svg_h - 8);
    putf(o, "<text transform=\"translate(14 %.1f) rotate(-90)\" text-anchor=\"middle\" "
            "font-size=\"12\" fill=\"#1d2430\">",
         p.top + p.height / 2);
    put_text(o, ylabel);
    put(o, "</text>\n");

    /* Legend, above the plot. */
    double lx = p.left;
    for (int j = 0; j < ns; j++) {
        if (!has[j]) continue;
        putf(o, "<line x1=\"%.1f\" y1=\"14\" x2=\"%.1f\" y2=\"14\" stroke=\"%s\" "
                "stroke-width=\"2.5\"/><text x=\"%.1f\" y=\"14\" dy=\"0.32em\" font-size=\"12\" "
                "fill=\"#1d2430\">",
             lx, lx + 22, s[j].color, lx + 28);
        put_text(o, s[j].label);
        put(o, "</text>\n");
        lx += 28 + 7.0 * (double)strlen(s[j].label) + 24;
    }

    /* The series. */
    bool dots = n <= 60;
    for (int j = 0; j < ns; j++) {
        if (!has[j]) continue;
        putf(o, "<path fill=\"none\" stroke=\"%s\" stroke-width=\"2\" stroke-linejoin=\"round\" "
                "stroke-linecap=\"round\" d=\"",
             s[j].color);
        bool pen = false;
        for (int i = 0; i < n; i++) {
            double v = series_at(&ep[i], &s[j]);
            if (!isfinite(v)) continue;
            putf(o, "%s%.1f %.1f", pen ? "L" : "M", plot_x(&p, (double)ep[i].epoch),
                 plot_y(&p, v));
            pen = true;
        }
        put(o, "\"/>\n");
        for (int i = 0; dots && i < n; i++) {
            double v = series_at(&ep[i], &s[j]);
            if (!isfinite(v)) continue;
            putf(o, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3\" fill=\"%s\"><title>epoch %" PRId64
                    ": ",
                 plot_x(&p, (double)ep[i].epoch), plot_y(&p, v), s[j].color, ep[i].epoch);
            put_text(o, s[j].label);
            putf(o, " %.4f</title></circle>\n", v);
        }
    }
    put(o, "</svg></figure>\n");
    return true;
}

/* --- SVG: the confusion matrix ----------------------------------------------------------------- */

/* Copies s cut to at most max code points, the last one an ellipsis when
 * cut. buf holds max * 4 + 4 bytes. */
static void label_cut(const char *s, int max, char *buf, size_t len)
{
    size_t i = 0, keep = 0;
    int cps = 0;
    while (s[i]) {
        size_t step = 1;
        /* At most 4 bytes a code point, even in broken UTF-8, so buf fits. */
        while (step < 4 && s[i + step] && ((unsigned char)s[i + step] & 0xc0) == 0x80) step++;
        if (cps == max - 1) keep = i;
        cps++;
        i += step;
    }
    if (cps <= max) keep = i;
    KILN_ASSERT(keep + 4 <= len);
    memcpy(buf, s, keep);
    buf[keep] = '\0';
    if (cps > max) strcat(buf, ELLIPSIS);
}

static int64_t row_total(const struct kiln_metrics *m, int r)
{
    int64_t t = 0;
    for (int c = 0; c < m->n_classes; c++) t += m->confusion[(size_t)r * m->n_classes + c];
    return t;
}

/* White to dark blue by f in [0, 1]. */
static void shade(double f, char buf[8])
{
    static const int lo[3] = {0xf7, 0xfb, 0xff}, hi[3] = {0x08, 0x30, 0x6b};
    int rgb[3];
    for (int k = 0; k < 3; k++) rgb[k] = (int)lround(lo[k] + (hi[k] - lo[k]) * f);
    snprintf(buf, 8, "#%02x%02x%02x", rgb[0], rgb[1], rgb[2]);
}

/* A label with its full name as a tooltip when cut. */
static void svg_label(struct out *o, const char *name, const char *attrs)
{
    char cut[LABEL_CHARS * 4 + 4];
    label_cut(name, LABEL_CHARS, cut, sizeof cut);
    putf(o, "<text %s>", attrs);
    if (strcmp(cut, name) != 0) {
        put(o, "<title>");
        put_text(o, name);
        put(o, "</title>");
    }
    put_text(o, cut);
    put(o, "</text>\n");
}

/* The heatmap: rows are the true class, columns the predicted one, each
 * cell shaded by its share of the row and labelled with its count. Cells
 * shrink with many classes; below a readable size the counts move into the
 * cells' tooltips and only every k-th class is labelled. */
static void svg_confusion(struct out *o, const struct kiln_card_input *in,
                          const struct kiln_metrics *m)
{
    int n = m->n_classes;
    double cell_px = fmax(3.0, fmin(56.0, 560.0 / n));
    int longest = 1;
    char nb[48], attrs[256], fill[8];
    for (int i = 0; i < n; i++) {
        const char *name = class_name(in, i, nb);
        int cps = 0;
        for (const char *p = name; *p; p++) cps += ((unsigned char)*p & 0xc0) != 0x80;
        if (cps > longest) longest = cps;
    }
    if (longest > LABEL_CHARS) longest = LABEL_CHARS;
    int every = cell_px >= 9 ? 1 : (int)ceil(9.0 / cell_px);
    double font = fmin(12.0, fmax(7.0, cell_px * 0.75));
    double label_w = longest * font * 0.6 + 8;
    double ml = 28 + label_w, mt = 12;
    double grid = n * cell_px;
    double mb = label_w * 0.72 + 30;
    double bar = 12; /* the colour scale, right of the grid */
    double w = ml + grid + 24 + bar + 44, h = mt + grid + mb;

    int64_t most = 1;
    for (size_t i = 0; i < (size_t)n * n; i++)
        if (m->confusion[i] > most) most = m->confusion[i];
    int digits = (int)strlen(fmt_i64(nb, most));
    double count_font = fmin(13.0, fmin(cell_px * 0.42, cell_px * 0.85 / (digits * 0.62)));
    bool counts = count_font >= 7.0;

    putf(o, "<figure><svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 %.0f %.0f\" "
            "width=\"%.0f\" height=\"%.0f\" role=\"img\"><title>Confusion matrix</title>\n",
         w, h, w, h);
    putf(o, "<defs><linearGradient id=\"kiln-cm-scale\" x1=\"0\" y1=\"1\" x2=\"0\" y2=\"0\">"
            "<stop offset=\"0\" stop-color=\"#f7fbff\"/><stop offset=\"1\" "
            "stop-color=\"#08306b\"/></linearGradient></defs>\n");
    putf(o, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"#f7fbff\" "
            "stroke=\"#d0d7de\"/>\n",
         ml, mt, grid, grid);
    for (int r = 0; r < n; r++) {
        int64_t total = row_total(m, r);
        char tname[48], pname[48];
        const char *tn = class_name(in, r, tname);
        for (int c = 0; c < n; c++) {
            int64_t v = m->confusion[(size_t)r * n + c];
            double f = total > 0 ? (double)v / (double)total : 0;
            double x = ml + c * cell_px, y = mt + r * cell_px;
            /* Empty cells are the background; only small matrices say 0. */
            if (v == 0) {
                if (counts)
                    putf(o, "<text x=\"%.2f\" y=\"%.2f\" dy=\"0.35em\" text-anchor=\"middle\" "
                            "font-size=\"%.1f\" fill=\"#8c959f\">0</text>\n",
                         x + cell_px / 2, y + cell_px / 2, count_font);
                continue;
            }
            shade(0.04 + 0.96 * f, fill); /* a tint even for 1 in 10000 */
            putf(o, "<rect x=\"%.2f\" y=\"%.2f\" width=\"%.2f\" height=\"%.2f\" fill=\"%s\"><title>"
                    "true ",
                 x, y, cell_px, cell_px, fill);
            put_text(o, tn);
            put(o, ", predicted ");
            put_text(o, class_name(in, c, pname));
            putf(o, ": %" PRId64 " (%.1f%% of the row)</title></rect>\n", v, 100.0 * f);
            if (counts)
                putf(o, "<text x=\"%.2f\" y=\"%.2f\" dy=\"0.35em\" text-anchor=\"middle\" "
                        "font-size=\"%.1f\" fill=\"%s\" pointer-events=\"none\">%" PRId64 "</text>\n",
                     x + cell_px / 2, y + cell_px / 2, count_font, f > 0.5 ? "#ffffff" : "#1d2430",
                     v);
        }
    }
    /* Class names: true classes on the left, predicted ones below, slanted. */
    for (int i = 0; i < n; i += every) {
        const char *name = class_name(in, i, nb);
        double mid = i * cell_px + cell_px / 2;
        snprintf(attrs, sizeof attrs,
                 "x=\"%.1f\" y=\"%.1f\" dy=\"0.32em\" text-anchor=\"end\" font-size=\"%.1f\" "
                 "fill=\"#1d2430\"",
                 ml - 6, mt + mid, font);
        svg_label(o, name, attrs);
        snprintf(attrs, sizeof attrs,
                 "transform=\"translate(%.1f %.1f) rotate(-45)\" text-anchor=\"end\" "
                 "font-size=\"%.1f\" fill=\"#1d2430\"",
                 ml + mid + font * 0.3, mt + grid + 8, font);
        svg_label(o, name, attrs);
    }
    putf(o, "<text transform=\"translate(14 %.1f) rotate(-90)\" text-anchor=\"middle\" "
            "font-size=\"12\" font-weight=\"600\" fill=\"#1d2430\">true class</text>\n",
         mt + grid / 2);
    putf(o, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\" font-size=\"12\" "
            "font-weight=\"600\" fill=\"#1d2430\">predicted class</text>\n",
         ml + grid / 2, h - 8);
    /* The scale: share of the true class's rows. */
    double bx = ml + grid + 24;
    putf(o, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.0f\" height=\"%.1f\" "
            "fill=\"url(#kiln-cm-scale)\" stroke=\"#d0d7de\"/>\n"
            "<text x=\"%.1f\" y=\"%.1f\" dy=\"0.32em\" font-size=\"10\" fill=\"#57606a\">100%%</text>\n"
            "<text x=\"%.1f\" y=\"%.1f\" dy=\"0.32em\" font-size=\"10\" fill=\"#57606a\">0%%</text>\n",
         bx, mt, bar, grid, bx + bar + 4, mt + 4, bx + bar + 4, mt + grid - 4);
    put(o, "</svg><figcaption>Rows: true class; columns: predicted class. Each cell is shaded "
           "by its share of the true class's rows");
    put(o, counts ? " and shows its count" : "; hover a cell for its count");
    put(o, ".</figcaption></figure>\n");
}

/* --- sections ------------------------------------------------------------------------------------ */

static void html_head(struct out *o, const struct kiln_card_input *in)
{
    char vb[48];
    put(o, "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
           "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; "
           "style-src 'unsafe-inline'\">\n"
           "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>"
           "Model card: ");
    put_text(o, or_dash(in->model_name));
    putf(o, " v%s</title>\n", fmt_i64(vb, in->model_version));
    put(o, "<style>\n"
           "body{font:15px/1.5 system-ui,-apple-system,\"Segoe UI\",Roboto,sans-serif;"
           "color:#1d2430;max-width:60rem;margin:2rem auto;padding:0 1rem}\n"
           "h1{font-size:1.75rem;border-bottom:2px solid #d0d7de;padding-bottom:.3rem}\n"
           "h2{font-size:1.3rem;margin-top:2.2rem;border-bottom:1px solid #e5e8eb;"
           "padding-bottom:.2rem}\n"
           "h3{font-size:1.05rem;margin-top:1.4rem}\n"
           "table{border-collapse:collapse;margin:.4rem 0 1rem;font-size:.9rem}\n"
           "th,td{border:1px solid #d0d7de;padding:.25rem .6rem;text-align:left;"
           "vertical-align:top;white-space:pre-line}\n"
           "th{background:#f3f5f7}\n"
           ".num{text-align:right;font-variant-numeric:tabular-nums}\n"
           "code,pre{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;"
           "font-size:.85em}\n"
           "code{word-break:break-all}\n"
           "pre{background:#f6f8fa;border:1px solid #e5e8eb;padding:.75rem;overflow:auto;"
           "max-height:30rem}\n"
           ".text{white-space:pre-line}\n"
           ".note{color:#57606a;font-style:italic}\n"
           ".wide{overflow-x:auto}\n"
           "figure{margin:1rem 0}\n"
           "svg{max-width:100%;height:auto;display:block}\n"
           "svg text{font-family:system-ui,-apple-system,\"Segoe UI\",Roboto,sans-serif}\n"
           "figcaption{color:#57606a;font-size:.85rem}\n"
           "details{margin:.5rem 0 1rem}\n"
           "summary{cursor:pointer;color:#57606a}\n"
           "footer{margin-top:3rem;color:#57606a;font-size:.8rem}\n"
           "@media print{pre{max-height:none;overflow:visible}.wide{overflow:visible}}\n"
           "</style>\n</head>\n<body>\n");
}

static void section_details(struct out *o, const struct kiln_card_input *in)
{
    static const char *const heads[] = {"Field", "Value"};
    static const unsigned flags[] = {0, 0};
    const struct kiln_card_config *card = in->card;
    char vb[48];

    heading(o, 2, "Model details");
    table_begin(o, 2, heads, flags);
    kv_row(o, "Name", 0, or_dash(in->model_name));
    kv_row(o, "Version", 0, fmt_i64(vb, in->model_version));
    kv_row(o, "SHA-256", COL_CODE, or_dash(in->model_sha256));
    kv_row(o, "Created", 0, or_dash(in->created));
    kv_row(o, "Authors", 0, card && is_given(card->authors) ? card->authors : NOT_STATED);
    kv_row(o, "License", 0, card && is_given(card->license) ? card->license : NOT_STATED);
    table_end(o);
    /* The registry's description, then the config's when it says more. */
    bool said = false;
    if (is_given(in->description)) {
        para_user(o, in->description);
        said = true;
    }
    if (card && is_given(card->description) &&
        !(said && trimmed_len(card->description) == trimmed_len(in->description) &&
          strncmp(card->description, in->description, trimmed_len(in->description)) == 0)) {
        para_user(o, card->description);
        said = true;
    }
    if (!said) para_note(o, "No description given.");
}

static const struct kiln_split_stats *stats_split(const struct kiln_dataset_stats *s)
{
    for (int i = 0; i < s->n_splits && i < KILN_SPLIT_COUNT; i++)
        if (s->splits[i].split == KILN_SPLIT_TRAIN) return &s->splits[i];
    return s->n_splits > 0 ? &s->splits[0] : NULL;
}

static void data_class_balance(struct out *o, const struct kiln_card_input *in,
                               const struct kiln_dataset_stats *s)
{
    const char *heads[1 + KILN_SPLIT_COUNT] = {"class"};
    unsigned flags[1 + KILN_SPLIT_COUNT] = {0};
    const struct kiln_split_stats *cols[KILN_SPLIT_COUNT];
    int nc = 0, classes = 0;
    char nb[48], cb[96];

    for (int i = 0; i < s->n_splits && i < KILN_SPLIT_COUNT; i++) {
        const struct kiln_split_stats *sp = &s->splits[i];
        if (sp->n_classes <= 0 || !sp->class_counts) continue;
        cols[nc] = sp;
        heads[1 + nc] = kiln_split_name(sp->split);
        flags[1 + nc] = COL_NUM;
        nc++;
        if (sp->n_classes > classes) classes = sp->n_classes;
    }
    if (!nc) return;
    heading(o, 3, "Class balance");
    table_begin(o, 1 + nc, heads, flags);
    for (int c = 0; c < classes; c++) {
        row_begin(o);
        cell(o, 0, class_name(in, c, nb));
        for (int j = 0; j < nc; j++) {
            const struct kiln_split_stats *sp = cols[j];
            if (c >= sp->n_classes) {
                cell(o, COL_NUM, DASH);
                continue;
            }
            int64_t total = 0;
            for (int k = 0; k < sp->n_classes; k++) total += sp->class_counts[k];
            double pct = total > 0 ? 100.0 * (double)sp->class_counts[c] / (double)total : 0;
            snprintf(cb, sizeof cb, "%" PRId64 " (%.1f%%)", sp->class_counts[c], pct);
            cell(o, COL_NUM, cb);
        }
        row_end(o);
    }
    table_end(o);
}

static void feature_row(struct out *o, const struct kiln_feature_stats *f)
{
    char b[48];
    row_begin(o);
    cell(o, 0, f->name);
    cell(o, COL_NUM, fmt_i64(b, f->count));
    cell(o, COL_NUM, fmt_sig(b, f->mean));
    cell(o, COL_NUM, fmt_sig(b, f->std));
    cell(o, COL_NUM, fmt_sig(b, f->min));
    cell(o, COL_NUM, fmt_sig(b, f->quantiles[2])); /* the 50% quantile */
    cell(o, COL_NUM, fmt_sig(b, f->max));
    row_end(o);
}

static void data_features(struct out *o, const struct kiln_split_stats *sp)
{
    static const char *const heads[] = {"feature", "count", "mean", "std", "min", "median", "max"};
    static const unsigned flags[] = {0, COL_NUM, COL_NUM, COL_NUM, COL_NUM, COL_NUM, COL_NUM};
    char b1[48], b2[48], b3[48], nb[48];
    if (sp->n_features <= 0 || !sp->features) return;

    heading(o, 3, "Features");
    para_open(o);
    putf(o, "Statistics of the %s split, as the model sees the values.",
         kiln_split_name(sp->split));
    para_close(o);
    table_begin(o, 7, heads, flags);
    for (int64_t i = 0; i < sp->n_features && i < FEATURES_SHOWN; i++) feature_row(o, &sp->features[i]);
    table_end(o);

    /* Over every feature: the extremes, and the mean of all values. */
    double lo = INFINITY, hi = -INFINITY, sum = 0, count = 0;
    for (int64_t i = 0; i < sp->n_features; i++) {
        const struct kiln_feature_stats *f = &sp->features[i];
        if (f->count <= 0) continue;
        if (isfinite(f->min)) lo = fmin(lo, f->min);
        if (isfinite(f->max)) hi = fmax(hi, f->max);
        if (isfinite(f->mean)) {
            sum += f->mean * (double)f->count;
            count += (double)f->count;
        }
    }
    para_open(o);
    putf(o, "All %s features: min %s, max %s, mean %s.", fmt_i64(nb, sp->n_features),
         fmt_sig(b1, lo), fmt_sig(b2, hi), fmt_sig(b3, count > 0 ? sum / count : NAN));
    if (sp->n_features > FEATURES_SHOWN)
        putf(o, " The table shows the first %d.", FEATURES_SHOWN);
    para_close(o);
}

static void data_targets(struct out *o, const struct kiln_split_stats *sp)
{
    static const char *const heads[] = {"target", "count", "mean", "std", "min", "median", "max"};
    static const unsigned flags[] = {0, COL_NUM, COL_NUM, COL_NUM, COL_NUM, COL_NUM, COL_NUM};
    if (sp->target_dim <= 0 || !sp->targets) return;
    heading(o, 3, "Targets");
    table_begin(o, 7, heads, flags);
    for (int64_t i = 0; i < sp->target_dim; i++) feature_row(o, &sp->targets[i]);
    table_end(o);
}

static void section_data(struct out *o, const struct kiln_card_input *in)
{
    static const char *const heads[] = {"split", "rows", "features"};
    static const unsigned flags[] = {0, COL_NUM, COL_NUM};
    const struct kiln_dataset_stats *s = in->stats;
    char b1[48], b2[48];

    heading(o, 2, "Training data");
    para_open(o);
    put(o, "Dataset ");
    put(o, o->html ? "<strong>" : "**");
    put_inline(o, or_dash(in->dataset_name));
    put(o, o->html ? "</strong>" : "**");
    put(o, ", content hash ");
    if (is_given(in->dataset_sha256))
        put_code(o, in->dataset_sha256, ESC_TEXT);
    else
        put(o, DASH);
    put(o, ".");
    para_close(o);
    if (!s || s->n_splits <= 0) {
        para_note(o, "No statistics recorded for this dataset version.");
        return;
    }
    table_begin(o, 3, heads, flags);
    for (int i = 0; i < s->n_splits && i < KILN_SPLIT_COUNT; i++) {
        const struct kiln_split_stats *sp = &s->splits[i];
        row_begin(o);
        cell(o, 0, kiln_split_name(sp->split));
        cell(o, COL_NUM, fmt_i64(b1, sp->rows));
        cell(o, COL_NUM, fmt_i64(b2, sp->n_features));
        row_end(o);
    }
    table_end(o);
    data_class_balance(o, in, s);
    const struct kiln_split_stats *sp = stats_split(s);
    if (sp) {
        data_targets(o, sp);
        data_features(o, sp);
    }
}

static const struct series loss_series[] = {
    {"train loss", "#1f77b4", offsetof(struct kiln_card_epoch, train_loss)},
    {"val loss", "#e8710a", offsetof(struct kiln_card_epoch, val_loss)},
};
static const struct series acc_series[] = {
    {"val accuracy", "#2a9d3a", offsetof(struct kiln_card_epoch, val_accuracy)},
};

/* Markdown code fences must be longer than any backtick run in the text. */
static void code_block(struct out *o, const char *lang, const char *text)
{
    size_t n = trimmed_len(text);
    if (o->html) {
        put(o, "<pre><code>");
        put_esc_n(o, text, n, ESC_TEXT);
        put(o, "</code></pre>\n");
        return;
    }
    int run = 0, longest = 0;
    for (size_t i = 0; i < n; i++) {
        run = text[i] == '`' ? run + 1 : 0;
        if (run > longest) longest = run;
    }
    int fence = longest >= 3 ? longest + 1 : 3;
    for (int i = 0; i < fence; i++) fputc('`', o->f);
    putf(o, "%s\n", lang);
    fwrite(text, 1, n, o->f);
    fputc('\n', o->f);
    for (int i = 0; i < fence; i++) fputc('`', o->f);
    put(o, "\n\n");
}

static void section_training(struct out *o, const struct kiln_card_input *in)
{
    static const char *const heads[] = {"epoch", "train loss", "val loss", "val accuracy"};
    static const unsigned flags[] = {COL_NUM, COL_NUM, COL_NUM, COL_NUM};
    char b[48];
    int n = in->epochs ? in->n_epochs : 0;

    heading(o, 2, "Training");
    heading(o, 3, "Config");
    if (is_given(in->config_yaml))
        code_block(o, "yaml", in->config_yaml);
    else
        para_note(o, "No training config recorded.");

    heading(o, 3, "Curves");
    if (n <= 0) {
        para_note(o, "No epochs recorded.");
        return;
    }
    if (o->html) {
        if (!svg_line_chart(o, "Loss per epoch", "loss", in->epochs, n, loss_series, 2, 300,
                            false))
            para_note(o, "No loss to chart: none is finite, or their range is too wide.");
        svg_line_chart(o, "Validation accuracy per epoch", "accuracy", in->epochs, n, acc_series,
                       1, 220, true);
    }
    table_begin(o, 4, heads, flags);
    for (int i = 0; i < n; i++) {
        const struct kiln_card_epoch *e = &in->epochs[i];
        row_begin(o);
        cell(o, COL_NUM, fmt_i64(b, e->epoch));
        cell(o, COL_NUM, fmt_fixed(b, e->train_loss, 4));
        cell(o, COL_NUM, fmt_fixed(b, e->val_loss, 4));
        cell(o, COL_NUM, fmt_fixed(b, e->val_accuracy, 4));
        row_end(o);
    }
    table_end(o);
}

static void confusion_table(struct out *o, const struct kiln_card_input *in,
                            const struct kiln_metrics *m)
{
    int n = m->n_classes;
    char nb[48];
    if (o->html) {
        put(o, "<div class=\"wide\"><table>\n<thead><tr><th>true \xe2\x86\x93 / predicted "
               "\xe2\x86\x92</th>");
        for (int c = 0; c < n; c++) {
            put(o, "<th class=\"num\">");
            put_text(o, class_name(in, c, nb));
            put(o, "</th>");
        }
        put(o, "</tr></thead>\n<tbody>\n");
    } else {
        put(o, "| true \xe2\x86\x93 / predicted \xe2\x86\x92 |");
        for (int c = 0; c < n; c++) {
            put(o, " ");
            const char *name = class_name(in, c, nb);
            put_esc_n(o, name, strlen(name), ESC_CELL);
            put(o, " |");
        }
        put(o, "\n|---|");
        for (int c = 0; c < n; c++) put(o, "---:|");
        put(o, "\n");
    }
    for (int r = 0; r < n; r++) {
        row_begin(o);
        if (o->html) {
            put(o, "<th>");
            put_text(o, class_name(in, r, nb));
            put(o, "</th>");
        } else {
            cell(o, 0, class_name(in, r, nb));
        }
        for (int c = 0; c < n; c++) cell(o, COL_NUM, fmt_i64(nb, m->confusion[(size_t)r * n + c]));
        row_end(o);
    }
    table_end(o);
}

static void section_evaluation(struct out *o, const struct kiln_card_input *in)
{
    static const char *const heads[] = {"metric", "value"};
    static const unsigned flags[] = {0, COL_NUM};
    static const char *const pc_heads[] = {"class", "precision", "recall", "F1", "support"};
    static const unsigned pc_flags[] = {0, COL_NUM, COL_NUM, COL_NUM, COL_NUM};
    const struct kiln_metrics *m = in->metrics;
    char b[48], nb[48];

    heading(o, 2, "Evaluation");
    if (!m) {
        para_note(o, "No evaluation recorded.");
        return;
    }
    para_open(o);
    put(o, "On the ");
    put(o, o->html ? "<strong>" : "**");
    put_inline(o, is_given(in->metrics_split) ? in->metrics_split : "evaluation");
    put(o, o->html ? "</strong>" : "**");
    putf(o, " split, %s rows.", fmt_i64(b, m->n));
    para_close(o);

    bool classify = m->n_classes > 0;
    table_begin(o, 2, heads, flags);
    kv_row(o, "loss", COL_NUM, fmt_fixed(b, m->loss, 4));
    if (classify) {
        kv_row(o, "accuracy", COL_NUM, fmt_fixed(b, m->accuracy, 4));
        kv_row(o, "macro F1", COL_NUM, fmt_fixed(b, m->macro_f1, 4));
    } else {
        kv_row(o, "MSE", COL_NUM, fmt_sig(b, m->mse));
        kv_row(o, "MAE", COL_NUM, fmt_sig(b, m->mae));
        kv_row(o, "R\xc2\xb2", COL_NUM, fmt_fixed(b, m->r2, 4));
    }
    table_end(o);
    if (!classify) return;

    if (m->precision && m->recall && m->f1) {
        heading(o, 3, "Per class");
        table_begin(o, 5, pc_heads, pc_flags);
        for (int c = 0; c < m->n_classes; c++) {
            row_begin(o);
            cell(o, 0, class_name(in, c, nb));
            cell(o, COL_NUM, fmt_fixed(b, m->precision[c], 3));
            cell(o, COL_NUM, fmt_fixed(b, m->recall[c], 3));
            cell(o, COL_NUM, fmt_fixed(b, m->f1[c], 3));
            cell(o, COL_NUM, m->confusion ? fmt_i64(b, row_total(m, c)) : DASH);
            row_end(o);
        }
        table_end(o);
    }
    if (m->confusion) {
        heading(o, 3, "Confusion matrix");
        if (o->html) {
            svg_confusion(o, in, m);
            put(o, "<details><summary>The confusion matrix as a table</summary>\n");
            confusion_table(o, in, m);
            put(o, "</details>\n");
        } else {
            para_open(o);
            put(o, "Rows: true class; columns: predicted class.");
            para_close(o);
            confusion_table(o, in, m);
        }
    }
}

static void section_lineage(struct out *o, const struct kiln_card_input *in)
{
    static const char *const heads[] = {"kind", "label", "hash", "detail"};
    static const unsigned flags[] = {0, 0, 0, 0};
    heading(o, 2, "Lineage");
    if (in->n_lineage <= 0 || !in->lineage) {
        para_note(o, "No lineage recorded.");
        return;
    }
    para_open(o);
    put(o, "Oldest first: the data, the run that trained on it, and what it produced.");
    para_close(o);
    table_begin(o, 4, heads, flags);
    for (int i = 0; i < in->n_lineage; i++) {
        const struct kiln_card_lineage *l = &in->lineage[i];
        row_begin(o);
        cell(o, 0, or_dash(l->kind));
        cell(o, 0, or_dash(l->label));
        cell(o, COL_CODE, or_dash(l->sha256));
        cell(o, 0, or_dash(l->detail));
        row_end(o);
    }
    table_end(o);
}

static void write_card(struct out *o, const struct kiln_card_input *in)
{
    const struct kiln_card_config *card = in->card;
    char vb[48];

    if (o->html) html_head(o, in);
    heading_open(o, 1);
    put(o, "Model card: ");
    put_inline(o, or_dash(in->model_name));
    putf(o, " v%s", fmt_i64(vb, in->model_version));
    heading_close(o, 1);

    section_details(o, in);
    heading(o, 2, "Intended use");
    para_stated(o, card ? card->intended_use : NULL);
    heading(o, 2, "Limitations");
    para_stated(o, card ? card->limitations : NULL);
    heading(o, 2, "Ethical considerations");
    para_stated(o, card ? card->ethical_considerations : NULL);
    section_data(o, in);
    section_training(o, in);
    section_evaluation(o, in);
    section_lineage(o, in);

    if (o->html)
        put(o, "<footer>Written by kiln " KILN_VERSION ".</footer>\n</body>\n</html>\n");
    else
        put(o, "---\n\n*Written by kiln " KILN_VERSION ".*\n");
}

/* --- entry point ---------------------------------------------------------------------------------- */

enum kiln_status kiln_card_write(const struct kiln_card_input *in, enum kiln_card_format fmt,
                                 const char *path)
{
    enum kiln_status st = KILN_OK;
    char tmp[4096];
    FILE *f = NULL;
    bool tmp_made = false;

    if (!in || !path || !path[0] || (fmt != KILN_CARD_MARKDOWN && fmt != KILN_CARD_HTML)) {
        st = kiln_errorf(KILN_ERR_USAGE, "kiln_card_write: no input, path or format");
        goto cleanup;
    }
    if (in->n_epochs < 0 || in->n_lineage < 0 ||
        (in->metrics && in->metrics->n_classes < 0)) {
        st = kiln_errorf(KILN_ERR_USAGE, "a negative count in the card input");
        goto cleanup;
    }
    st = fs_temp_path(path, tmp, sizeof tmp);
    if (st != KILN_OK) goto cleanup;
    f = fopen(tmp, "w");
    if (!f) {
        st = kiln_errorf(KILN_ERR_IO, "cannot create %s: %s", tmp, strerror(errno));
        goto cleanup;
    }
    tmp_made = true;
    struct out o = {.f = f, .html = fmt == KILN_CARD_HTML};
    write_card(&o, in);
    bool failed = ferror(f) != 0;
    int err = errno;
    if (fclose(f) != 0 && !failed) {
        failed = true;
        err = errno;
    }
    f = NULL;
    if (failed) {
        st = kiln_errorf(KILN_ERR_IO, "cannot write %s: %s", tmp, strerror(err));
        goto cleanup;
    }
    st = fs_publish(tmp, path);
    tmp_made = false; /* fs_publish removes the temp file itself on failure */

cleanup:
    if (f) fclose(f);
    if (tmp_made) unlink(tmp);
    if (st != KILN_OK && path) kiln_error_context(st, "writing model card %s", path);
    return st;
}
