/*
 * banned_pre.h - force-included (-include) before every project source.
 *
 * It pulls in the libc headers that declare the banned names first, then
 * banned.h, so any later use of a banned call in project code fails to
 * compile while the libc declarations themselves stay intact.
 */
#ifndef BOTTLED_BANNED_PRE_H
#define BOTTLED_BANNED_PRE_H
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "banned.h"
#endif
