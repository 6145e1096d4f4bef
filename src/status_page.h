/*
 * status_page.h - the HTML of the status page (status_page.c).
 */
#ifndef PGBUN_STATUS_PAGE_H
#define PGBUN_STATUS_PAGE_H

extern const char status_page_html[];

#endif							/* PGBUN_STATUS_PAGE_H */
